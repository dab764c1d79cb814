"""A trained run as a chess player: positions in, legal moves out (predict, play and UCI share it)."""
from __future__ import annotations

import chess
import torch

import suite

from .tokenizer import ChessTokenizer


def parse_fen(text: str) -> chess.Board:
    """A FEN from the user -> a board that still has moves to play; one clear line otherwise."""
    text = text.strip()
    if text in ("startpos", "start"):
        return chess.Board()
    try:
        board = chess.Board(text)
    except ValueError as e:
        raise suite.SuiteError(f"invalid FEN {text!r}: {e}") from None
    if not board.is_valid():
        reasons = ", ".join(f.name.lower() for f in chess.Status if f and f in board.status() and f.name)
        raise suite.SuiteError(f"invalid position {text!r}: {reasons or 'not a legal chess position'}")
    outcome = board.outcome()
    if outcome is not None:
        raise suite.SuiteError(f"the game is over in {text!r} ({outcome.termination.name.lower()}, {outcome.result()}): there is no move to choose")
    return board


@torch.no_grad()
def move_probabilities(model, board: chess.Board) -> list[tuple[chess.Move, float]]:
    """Legal moves of ``board`` with the policy's probabilities (masked softmax), best first."""
    tok: ChessTokenizer = model.tokenizer
    flip = tok.flips(board)
    inputs = torch.from_numpy(tok.encode(board)).long()[None].to(model.device)
    logits = model({"inputs": inputs})[0]
    moves = list(board.legal_moves)
    ids = torch.tensor([tok.move_id(m.uci(), flip) for m in moves], device=logits.device)
    probs = torch.softmax(logits[ids].float(), -1)
    order = probs.argsort(descending=True).tolist()
    return [(moves[i], float(probs[i])) for i in order]


def best_move(model, board: chess.Board, rules: bool = True) -> chess.Move:
    """The policy's most likely legal move. With ``rules`` (the default), three checks of the move
    list, one ply deep and made with python-chess: a move that mates at once is taken, and a move
    that stalemates the opponent or repeats an earlier position is passed over for the next most
    likely one, when there is one. ``rules=False`` is the policy alone (``suite play --raw``)."""
    ranked = move_probabilities(model, board)
    if not rules:
        return ranked[0][0]
    choice = None
    for move, _ in ranked:
        board.push(move)
        mates, drawish = board.is_checkmate(), board.is_stalemate() or board.is_repetition(2)
        board.pop()
        if mates:
            return move
        if choice is None and not drawish:
            choice = move
    return choice or ranked[0][0]


@torch.no_grad()
def value_probabilities(model, board: chess.Board) -> list[float]:
    inputs = torch.from_numpy(model.tokenizer.encode(board)).long()[None].to(model.device)
    return torch.softmax(model({"inputs": inputs})[0].float(), -1).tolist()

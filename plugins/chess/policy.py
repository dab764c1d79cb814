"""A trained run as a chess player: positions in, legal moves out (predict, play and UCI share it)."""
from __future__ import annotations

import random

import chess
import numpy as np
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


@torch.no_grad()
def top_moves(model, boards: list[chess.Board], batch_size: int = 256) -> list[chess.Move]:
    """The policy's most likely legal move for each board (no rule checks), in batches."""
    tok: ChessTokenizer = model.tokenizer
    out: list[chess.Move] = []
    for i in range(0, len(boards), batch_size):
        chunk = boards[i:i + batch_size]
        inputs = torch.from_numpy(np.stack([tok.encode(b) for b in chunk])).long().to(model.device)
        logits = model({"inputs": inputs}).float()
        for row, board in zip(logits, chunk):
            moves = list(board.legal_moves)
            ids = torch.tensor([tok.move_id(m.uci(), tok.flips(board)) for m in moves], device=row.device)
            out.append(moves[int(row[ids].argmax())])
    return out


def best_move(model, board: chess.Board, rules: bool = True, temperature: float = 0.0, rng: random.Random | None = None) -> chess.Move:
    """The policy's most likely legal move. With ``rules`` (the default), three checks of the move
    list, one ply deep and made with python-chess: a move that mates at once is taken, and a move
    that stalemates the opponent or repeats an earlier position is passed over for the next most
    likely one, when there is one. ``rules=False`` is the policy alone (``suite play --raw``).

    ``temperature`` > 0 samples the move from the policy's probabilities raised to ``1 / temperature``
    (with ``rng``) instead of taking the most likely one, so that repeated games differ; the rule
    checks then apply to the sampled order."""
    ranked = move_probabilities(model, board)
    if temperature > 0:
        ranked = sample_order(ranked, temperature, rng or random.Random())
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


def sample_order(ranked: list[tuple[chess.Move, float]], temperature: float, rng: random.Random) -> list[tuple[chess.Move, float]]:
    """``ranked`` with one move drawn from p ** (1 / temperature) put first (the rest keep their order)."""
    weights = [p ** (1.0 / temperature) for _, p in ranked]
    if not sum(weights) > 0:
        return ranked
    i = rng.choices(range(len(ranked)), weights)[0]
    return [ranked[i]] + ranked[:i] + ranked[i + 1:]


def random_opening(rng: random.Random, plies: int, book: str | None = None) -> list[chess.Move]:
    """The moves of a varied opening: up to ``plies`` moves from a polyglot book (weighted by the
    book, through python-chess), else ``plies`` uniformly random legal moves. Never a finished game."""
    import chess.polyglot

    for _ in range(100):
        board = chess.Board()
        if book:
            try:
                with chess.polyglot.open_reader(book) as reader:
                    for _ in range(plies):
                        entry = reader.get(board) and reader.weighted_choice(board, random=rng)
                        if not entry:
                            break
                        board.push(entry.move)
            except (OSError, ValueError) as e:
                raise suite.SuiteError(f"--book {book}: cannot read the polyglot book: {e}") from None
        else:
            for _ in range(plies):
                board.push(rng.choice(list(board.legal_moves)))
                if board.is_game_over():
                    break
        if not board.is_game_over():
            return board.move_stack
    return []


@torch.no_grad()
def value_probabilities(model, board: chess.Board) -> list[float]:
    inputs = torch.from_numpy(model.tokenizer.encode(board)).long()[None].to(model.device)
    return torch.softmax(model({"inputs": inputs})[0].float(), -1).tolist()

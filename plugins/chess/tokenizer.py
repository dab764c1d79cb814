"""Positions as a fixed-length token sequence, and every UCI move that can ever be legal.

A position becomes 72 tokens, in the spirit of searchless chess's 77-token FEN encoding:

    [side to move] [64 squares a1..h8] [4 castling rights K Q k q] [en-passant file] [halfmove clock, 2 digits]

With ``mirror`` (the default) a position with Black to move is mirrored first (ranks flipped,
colours swapped), so the model always sees the side to move as White moving "up" the board; the
move is mirrored the same way, so the policy is learned once for both colours (as Leela does).
The fullmove number is left out: it says nothing about the best move.

With ``attacks``, each square's token also says whether the side to move attacks it and whether
the opponent does (python-chess's attack sets, pins ignored): 13 x 4 square tokens instead of
13. A small model cannot work out sliding attacks in two layers; given them, it sees at once a
piece left en prise, the squares a king can flee to, a mate and a stalemate.
With ``checks`` as well, each square's token also says how a piece of the side to move standing
there would check the opponent's king (along a rank or file, a diagonal, or a knight's jump): a
mate and a stalemate both take the king's last square, and only the mate gives check.
With ``counts`` the attack part counts each side's attackers (0, 1, 2 or more, python-chess's
attack sets: a piece behind another on a line is not counted) instead of saying only who attacks:
a piece attacked twice and defended once, or a square two pieces guard, is one token (699 in all).
Token ids are int16 (the count tokens go past 255).

The move vocabulary has the 1968 UCI moves of searchless chess: 1792 queen-line and knight
from-to pairs and 176 promotions (4 pieces x 44 pawn moves onto the last rank, both colours).
Castling is written as the king's move (e1g1), as python-chess does for standard chess.
"""
from __future__ import annotations

import dataclasses

import chess
import numpy as np

import suite

# -- the move vocabulary ----------------------------------------------------------------------


def _all_moves() -> list[str]:
    moves = []
    for a in range(64):
        fa, ra = a % 8, a // 8
        for b in range(64):
            fb, rb = b % 8, b // 8
            df, dr = abs(fa - fb), abs(ra - rb)
            if a != b and (df == 0 or dr == 0 or df == dr or {df, dr} == {1, 2}):
                moves.append(chess.SQUARE_NAMES[a] + chess.SQUARE_NAMES[b])
    for from_rank, to_rank in ((6, 7), (1, 0)):  # White's and Black's promotions
        for f in range(8):
            for g in (f - 1, f, f + 1):
                if 0 <= g < 8:
                    for piece in "qrbn":
                        moves.append(chess.SQUARE_NAMES[from_rank * 8 + f] + chess.SQUARE_NAMES[to_rank * 8 + g] + piece)
    return moves


MOVES: list[str] = _all_moves()
MOVE_INDEX: dict[str, int] = {m: i for i, m in enumerate(MOVES)}
assert len(MOVES) == 1968
_MIRROR_RANK = str.maketrans("12345678", "87654321")


def mirror_uci(uci: str) -> str:
    """The same move on the mirrored board: e7e5 <-> e2e4 (promotion letters stay)."""
    return uci.translate(_MIRROR_RANK)


# -- the position tokens ----------------------------------------------------------------------
PIECES = ".PNBRQKpnbrqk"  # ids 0-12 on the squares
SIDES = "wb"
TOKENS = (
    [f"sq:{c}" for c in PIECES]
    + [f"side:{c}" for c in SIDES]
    + ["castle:-", "castle:+"]
    + ["ep:-"] + [f"ep:{f}" for f in "abcdefgh"]
    + [f"digit:{d}" for d in "0123456789"]
)
SIDE0, CASTLE0, EP0, DIGIT0 = 13, 15, 17, 26
# With ``attacks``: square tokens 36 + 13 * (a - 1) + piece, a = 1 attacked by the side to move,
# 2 by the opponent, 3 by both (a = 0 keeps the plain ids, so the first 36 tokens never change).
ATTACKS = ["us", "them", "both"]
ATTACK0 = len(TOKENS)
TOKENS += [f"sq:{c}:{a}" for a in ATTACKS for c in PIECES]
# With ``checks`` (with or without ``attacks``): how a piece of the side to move on the square would check the opponent's
# king (c = 1 along a rank or file, 2 along a diagonal, 3 a knight's jump; the three never meet on
# one square) folds in as CHECK0 + 13 * (4 * (c - 1) + a) + piece, a as above.
CHECKS = ["line", "diag", "knight"]
CHECK0 = len(TOKENS)
TOKENS += [f"sq:{p}:{a}:{c}" for c in CHECKS for a in ["none", *ATTACKS] for p in PIECES]
# With ``counts``: how many pieces of each side attack the square (0, 1, 2 or more), u for the side to
# move and t for the opponent, in place of who attacks it: COUNT0 + 13 * (9 * c + 3 * u + t) + piece,
# c = 0 (no check) or as above.
COUNT0 = len(TOKENS)
TOKENS += [f"sq:{p}:u{u}t{t}:{c}" for c in ["none", *CHECKS] for u in range(3) for t in range(3) for p in PIECES]
LENGTH = 1 + 64 + 4 + 1 + 2
SQUARES = slice(1, 65)  # where the 64 square tokens sit in the sequence

_EXPAND = {ord(str(n)): "." * n for n in range(1, 9)}
_EXPAND[ord("/")] = None
_PIECE_IDS = bytes.maketrans(PIECES.encode(), bytes(range(len(PIECES))))


@dataclasses.dataclass
class ChessTokenizer(suite.Tokenizer):
    """FEN or ``chess.Board`` -> 72 token ids; UCI move <-> one of 1968 move ids."""

    mirror: bool = True
    attacks: bool = False
    checks: bool = False
    counts: bool = False  # attackers counted (0, 1, 2+ a side) instead of attacks alone; implies attacks

    length = LENGTH
    n_moves = len(MOVES)

    @property
    def vocab_size(self) -> int:
        return len(TOKENS) if self.counts else COUNT0 if self.checks else CHECK0 if self.attacks else ATTACK0

    def flips(self, fen_or_board) -> bool:
        """Whether this position is mirrored before encoding (Black to move and ``mirror`` on)."""
        if isinstance(fen_or_board, chess.Board):
            return self.mirror and fen_or_board.turn == chess.BLACK
        return self.mirror and fen_or_board.split(" ", 2)[1] == "b"

    def encode(self, fen_or_board) -> np.ndarray:
        """A FEN (as python-chess writes it) or a board -> (72,) int16 token ids."""
        fen = fen_or_board.fen() if isinstance(fen_or_board, chess.Board) else fen_or_board
        fields = fen.split()
        if len(fields) < 4:
            raise ValueError(f"not a FEN: {fen!r}")
        placement, side, castling, ep = fields[:4]
        halfmove = min(int(fields[4]), 99) if len(fields) > 4 else 0
        rows = placement.translate(_EXPAND)  # 64 characters, rank 8 first
        if len(rows) != 64:
            raise ValueError(f"not a FEN board: {placement!r}")
        flip = self.mirror and side == "b"
        if flip:  # rank 8 of the mirrored board is rank 1 of this one: the text is already a1..h8
            squares, side = rows.swapcase(), "w"
            castling = castling.swapcase()
        else:  # a1..h8 order: the ranks reversed
            squares = "".join(rows[i:i + 8] for i in range(56, -8, -8))
        out = np.empty(LENGTH, dtype=np.int16)
        out[0] = SIDE0 + SIDES.index(side)
        out[SQUARES] = np.frombuffer(squares.encode().translate(_PIECE_IDS), dtype=np.uint8)
        out[65:69] = [CASTLE0 + (c in castling) for c in "KQkq"]
        out[69] = EP0 if ep == "-" else EP0 + 1 + "abcdefgh".index(ep[0])
        out[70], out[71] = DIGIT0 + halfmove // 10, DIGIT0 + halfmove % 10
        if self.attacks or self.checks or self.counts:
            board = fen_or_board if isinstance(fen_or_board, chess.Board) else chess.Board(fen)
            out[SQUARES] = attack_tokens(board, out[SQUARES], flip, self.attacks, self.checks, self.counts)
        return out

    def move_id(self, uci: str, flip: bool) -> int:
        return MOVE_INDEX[mirror_uci(uci) if flip else uci]

    def move(self, index: int, flip: bool) -> chess.Move:
        uci = MOVES[index]
        return chess.Move.from_uci(mirror_uci(uci) if flip else uci)

    def legal_ids(self, board: chess.Board) -> list[int]:
        """Move ids of the legal moves of ``board`` (in the board's own orientation)."""
        flip = self.flips(board)
        return [self.move_id(m.uci(), flip) for m in board.legal_moves]

    def describe(self, ids) -> str:
        return " ".join(TOKENS[i] for i in ids)


def _bits(mask: int) -> np.ndarray:
    """A python-chess square set -> (64,) 0/1, a1..h8."""
    return np.unpackbits(np.array([mask], dtype="<u8").view(np.uint8), bitorder="little")


def check_lines(board: chess.Board) -> np.ndarray:
    """(64,) a1..h8: 0, or how a piece of the side to move there would check the opponent's king:
    1 along a rank or file, 2 along a diagonal (pieces in between block), 3 a knight's jump."""
    king = board.king(not board.turn)
    if king is None:
        return np.zeros(64, dtype=np.uint8)
    occupied = board.occupied
    line = (chess.BB_RANK_ATTACKS[king][chess.BB_RANK_MASKS[king] & occupied]
            | chess.BB_FILE_ATTACKS[king][chess.BB_FILE_MASKS[king] & occupied])
    diagonal = chess.BB_DIAG_ATTACKS[king][chess.BB_DIAG_MASKS[king] & occupied]
    return _bits(line) + 2 * _bits(diagonal) + 3 * _bits(chess.BB_KNIGHT_ATTACKS[king])


def attack_tokens(board: chess.Board, squares: np.ndarray, flip: bool, attacks: bool = True,
                  checks: bool = False, counts: bool = False) -> np.ndarray:
    """The 64 square ids (in the encoded orientation) with who attacks each square folded in (with
    ``counts``: how many of each side's pieces, up to 2), and with ``checks`` how a piece there
    would check the opponent's king."""
    once, twice = [0, 0], [0, 0]  # squares attacked by at least one / two pieces: [the side to move, the opponent]
    for square, piece in board.piece_map().items() if attacks or counts else ():
        side, mask = int(piece.color != board.turn), board.attacks_mask(square)
        twice[side] |= once[side] & mask
        once[side] |= mask
    us, them = (_bits(once[i]) + (_bits(twice[i]) if counts else 0) for i in (0, 1))
    check = check_lines(board) if checks else np.zeros(64, dtype=np.uint8)
    if flip:  # the mirrored board: square s shows what stood on s ^ 56
        us, them, check = (x.reshape(8, 8)[::-1].reshape(64) for x in (us, them, check))
    n, check = len(PIECES), check.astype(np.int64)
    if counts:
        return (COUNT0 + n * (9 * check + 3 * us + them) + squares).astype(np.int16)
    who = us + 2 * them  # 0 none, 1 the side to move, 2 the opponent, 3 both
    out = np.where(who > 0, ATTACK0 - n + n * who + squares, squares)
    out = np.where(check > 0, CHECK0 + n * (4 * (check - 1) + who) + squares, out)
    return out.astype(np.int16)

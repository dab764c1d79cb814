"""Chess: learn moves from Stockfish-labelled positions or real PGN games, play games, speak UCI.

Reads top to bottom: the board tokenizer and move vocabulary (tokenizer.py), the policy head
(heads.py), the data (data.py, with generate.py for Stockfish self-play, pgn.py for PGN files,
mate.py for mate-in-one puzzles), the tasks (task.py), and the commands; this file registers them
(the task module, which needs torch, is imported when a hook or a name asks for it):

  chess        the next move (the policy), trained on Stockfish's best moves or the moves of PGN games
  chess-value  the game's outcome (loss / draw / win for the side to move)
  chess-mate   the mating move in mate-in-one positions (every mating move counts)

  suite play RUN --opponent stockfish|random    matches, PGN out, score with CI and Elo difference
  suite elo RUN                                 Elo with a 95% interval from a ladder against Stockfish
  suite eval-puzzles RUN --puzzles FILE.csv     solve rate on Lichess-format puzzles
  suite uci RUN                                 the model as a UCI engine on stdin/stdout
"""
from __future__ import annotations

import suite
from suite.lazy import lazy_getattr


@suite.hookimpl
def suite_register_tasks(register):
    from .task import ChessMateTask, ChessTask, ChessValueTask

    register(ChessTask())
    register(ChessValueTask())
    register(ChessMateTask())


@suite.hookimpl
def suite_register_commands(register):
    from . import elo, play, puzzles, uci

    register("play", "play a trained chess run against Stockfish or a random mover; PGN, score and Elo", play.configure, play.run)
    register("elo", "rate a trained chess run: a ladder of games against Stockfish's UCI_Elo levels, an Elo rating with its confidence interval",
             elo.configure, elo.run)
    register("eval-puzzles", "score a trained chess run on Lichess-format puzzles (CSV, .gz, .zst): solve rate by rating",
             puzzles.configure, puzzles.run)
    register("uci", "run a trained chess run as a UCI engine on stdin/stdout", uci.configure, uci.run)


# The names of task.py this package serves, and its files, imported on first use.
_EXPORTS = dict.fromkeys(["chess_data", "cpu_cores", "ensure_shards", "stockfish_positions", "PolicyHead",
                         "cached_mate_positions", "mate_chunks", "read_pgn", "move_probabilities", "parse_fen",
                         "value_probabilities", "ChessTokenizer", "DEFAULT_MATE_PUZZLES", "DEFAULT_ON_POLICY_GAMES",
                         "ChessTask", "ChessValueTask", "ChessMateTask"], ".task")
__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())

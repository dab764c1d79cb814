"""On-policy data (DAgger): during training the policy plays the random mover, and Stockfish labels
the positions it met, so that it also learns what to do in the positions its own moves lead to.

A small policy trained on Stockfish's games wins material from a weak opponent and then fails to
finish: its own games reach positions (pieces left en prise, a bare king chased around, stalemate
traps) that Stockfish's games seldom show. DAgger (Ross, Gordon and Bagnell, 2011) closes that gap
by labelling the states the learner itself visits. Here, at the end of every training epoch from
``data.on_policy_from`` of the run up to 85% of it, the current policy plays ``data.on_policy_games`` games
against the random mover (its most likely legal move, no rule checks: the raw policy), Stockfish
labels every position in which the policy was to move (``data.nodes``, as the built-in data), and
those positions join the training set for the rest of the run.

The training set grows between epochs: the callback replaces the DataModule's ``datasets["train"]``
with a larger one and has the Trainer read it again at the next epoch
(``reload_dataloaders_every_n_epochs``). The rounds' positions are kept in the checkpoint, so a
resumed run trains on the same data as the run that was interrupted; under DDP rank 0 plays and
labels and every rank receives the same positions.
"""
from __future__ import annotations

import time

import chess
import pytorch_lightning as pl

from .data import UNKNOWN, Positions
from .generate import label_positions
from .play import RandomMover
from .policy import top_moves

LAST_ROUND = 0.85  # no round once less than 15% of the run is left: its positions would hardly be trained on


def play_random_games(model, games: int, seed, max_plies: int) -> tuple[list[list[str]], list[float]]:
    """``games`` games of the raw policy against random movers, all advancing together (the policy's
    moves in batches); the policy has White in even games. Returns the FENs of the positions in
    which the policy was to move, game by game, and the policy's points in each game. Games end as
    ``suite play``'s do (no draw claims), or as a draw at ``max_plies``."""
    movers = [RandomMover(f"{seed}:{g}") for g in range(games)]
    boards = [chess.Board() for _ in range(games)]
    seen: list[list[str]] = [[] for _ in range(games)]
    live = list(range(games))
    while live:
        mine = [g for g in live if boards[g].turn == (g % 2 == 0)]
        moves = dict(zip(mine, top_moves(model, [boards[g] for g in mine]))) if mine else {}
        for g in live:
            board = boards[g]
            if g in moves:
                seen[g].append(board.fen())
                board.push(moves[g])
            else:
                board.push(movers[g].move(board))
        live = [g for g in live if not boards[g].is_game_over() and boards[g].ply() < max_plies]
    points = []
    for g, board in enumerate(boards):
        outcome = board.outcome()
        winner = outcome.winner if outcome else None
        points.append(0.5 if winner is None else float(winner == (g % 2 == 0)))
    return seen, points


class OnPolicy(pl.Callback):
    """Rounds of on-policy data at epoch ends (see the module's docstring)."""

    def __init__(self, data: dict, seed: int):
        self.data, self.seed = data, int(seed)
        self.games, self.start = int(data["on_policy_games"]), float(data.get("on_policy_from") or 0.0)
        self.rounds: list[dict] = []  # {"step", "fen", "move"} of every round so far; saved in the checkpoint
        self.trainer = None

    def setup(self, trainer, pl_module, stage):
        self.trainer = trainer
        trainer.reload_dataloaders_every_n_epochs = 1  # the grown training set is read at the next epoch

    def state_dict(self) -> dict:
        return {"rounds": self.rounds}

    def load_state_dict(self, state: dict) -> None:
        """A resumed run: its training set as it was when the checkpoint was saved (before the
        Trainer first reads the training data, whatever the strategy's restore order)."""
        for r in state.get("rounds", []):
            self._add(r)

    def _add(self, r: dict) -> None:
        self.rounds.append(r)
        dm, n = self.trainer.datamodule, len(r["fen"])
        k = len(self.rounds)
        p = Positions(list(r["fen"]), list(r["move"]), [UNKNOWN] * n, [f"on-policy:{k}"] * n)
        dm.datasets = {**dm.datasets, "train": dm.datasets["train"].extended(dm.tokenizer, p)}  # a new dict: runs may share the old

    def on_train_epoch_end(self, trainer, pl_module):
        total, step = trainer.estimated_stepping_batches, trainer.global_step
        if step < self.start * total or step > LAST_ROUND * total:
            return
        start, k = time.time(), len(self.rounds) + 1
        r = None
        if trainer.is_global_zero:
            was_training = pl_module.training
            pl_module.eval()
            try:
                seen, points = play_random_games(pl_module, self.games, (self.seed, k), int(self.data["max_plies"]))
            finally:
                pl_module.train(was_training)
            fens = [f for game in seen for f in game]
            r = {"step": step, "fen": fens, "move": label_positions(fens, self.data),
                 "score": sum(points) / len(points)}
        r = trainer.strategy.broadcast(r, src=0)
        self._add(r)
        line = (f"on-policy round {k} at step {step}: the policy scored {r['score']:.1%} in {self.games} games "
                f"against the random mover; Stockfish labelled its {len(r['fen'])} positions "
                f"({time.time() - start:.0f}s); {len(trainer.datamodule.datasets['train'])} training positions")
        if trainer.is_global_zero:
            bar = trainer.progress_bar_callback
            bar.print(line) if bar is not None else print(line)

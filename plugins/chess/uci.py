"""``suite uci RUN_DIR``: the trained policy as a UCI engine on stdin/stdout.

It answers ``uci`` at once and loads the model on ``isready`` (``readyok`` once it is loaded) or
on the first ``go``, so GUIs and adapters that time the handshake (PolyGlot, cutechess-cli,
lichess-bot) see the engine start. The policy chooses a move with one forward pass (one node,
depth 1), run in a thread while commands are read, and ``bestmove`` comes:

- as soon as the move is found, for ``go`` with ``movetime``, ``wtime``/``btime`` (with ``winc``,
  ``binc``, ``movestogo``), ``nodes``, ``depth`` or no limit (``nodes``/``depth`` of 1 or more are
  met by the one evaluation);
- when the time runs out, if the move is not found by then (a first move, a slow machine): the
  first legal move, with an ``info string``. The time is ``movetime``, or from the clock
  ``time left / movestogo (default 20) + increment``, at most the time left, less ``Move Overhead``;
- on ``stop`` only, for ``go infinite`` and ``go ponder`` (``ponderhit`` answers at once).

``stop`` answers at once, ``ucinewgame`` resets the position and ends a search, ``quit`` (or the
end of input) ends the engine. ``searchmoves`` and ``mate`` are read and not used. Lines it does
not know are ignored and a malformed ``position`` gets an ``info string``, as the protocol asks.
A run that cannot be loaded is an ``info string`` and one error line, exit status 2.
"""
from __future__ import annotations

import os
import queue
import sys
import threading
import time
from pathlib import Path

import chess

import suite

COMMANDS = {"uci", "debug", "isready", "setoption", "register", "ucinewgame", "position", "go", "stop", "ponderhit", "quit"}
GO_NUMBERS = {"wtime", "btime", "winc", "binc", "movestogo", "depth", "nodes", "mate", "movetime"}
DEFAULT_MOVES_TO_GO = 20
OPTIONS = {"Threads": (1, 1, os.cpu_count() or 1), "Move Overhead": (10, 0, 5000)}  # name: (default, min, max)


def configure(parser):
    parser.add_argument("run_dir", help="a run of task chess (or chess-mate)")


def parse_position(tokens: list[str]) -> chess.Board:
    """The arguments of ``position``: ``startpos [moves ...]`` or ``fen F1 .. F6 [moves ...]``."""
    if "moves" in tokens:
        at = tokens.index("moves")
        spec, moves = tokens[:at], tokens[at + 1:]
    else:
        spec, moves = tokens, []
    if spec[:1] == ["startpos"]:
        board = chess.Board()
    elif spec[:1] == ["fen"] and len(spec) > 1:
        board = chess.Board(" ".join(spec[1:]))
        if not board.is_valid():
            raise ValueError(f"not a legal chess position: {board.fen()}")
    else:
        raise ValueError("expected 'startpos' or 'fen ...'")
    for uci in moves:
        move = chess.Move.from_uci(uci)
        if move not in board.legal_moves:
            raise ValueError(f"illegal move {uci} in {board.fen()}")
        board.push(move)
    return board


def parse_go(tokens: list[str]) -> dict:
    """The arguments of ``go`` -> {name: int} for the numbers, True for ``infinite`` and ``ponder``.
    ``searchmoves`` takes the moves after it; a number that does not read is left out."""
    limits, words = {}, iter(tokens)
    for word in words:
        if word in ("infinite", "ponder"):
            limits[word] = True
        elif word in GO_NUMBERS:
            try:
                limits[word] = int(next(words, ""))
            except ValueError:
                pass
    return limits


def budget(limits: dict, white: bool) -> float | None:
    """Seconds to answer a ``go`` in, from ``movetime`` and the clock; None: no limit."""
    times = []
    if "movetime" in limits:
        times.append(limits["movetime"])
    left = limits.get("wtime" if white else "btime")
    if left is not None:
        inc = limits.get("winc" if white else "binc", 0)
        times.append(min(left / max(limits.get("movestogo", DEFAULT_MOVES_TO_GO), 1) + inc, left))
    return max(min(times), 0) / 1000 if times else None


class Search:
    """One ``go``: the policy's move, looked for in a thread that posts ``("found", self)`` to the engine's events."""

    def __init__(self, engine, board: chess.Board, limits: dict):
        self.board, self.limits = board, limits
        self.wait_for_stop = bool(limits.get("infinite") or limits.get("ponder"))
        self.overhead = engine.options["Move Overhead"] / 1000
        self.started = time.monotonic()
        self.deadline = self.time_up()
        self.move, self.error = None, None
        threading.Thread(target=self.think, args=(engine,), daemon=True).start()

    def think(self, engine) -> None:
        from .policy import best_move

        try:
            self.move = best_move(engine.model(), self.board)  # with the move history: repetitions are passed over
        except Exception as e:  # raised in the main thread, which reads the events
            self.error = e
        engine.events.put(("found", self))

    def time_up(self) -> float | None:
        """When ``bestmove`` is due (``time.monotonic()``), if the time is limited."""
        seconds = budget(self.limits, self.board.turn == chess.WHITE)
        return None if seconds is None else time.monotonic() + max(seconds - self.overhead, 0)

    def ponderhit(self) -> None:
        """The time control applies from now on."""
        self.wait_for_stop = False
        self.deadline = self.time_up()


class Engine:
    """The engine's state: the position, the options, the search under way and the model once loaded.
    Everything it prints is printed from the thread that reads ``events`` (``serve``)."""

    def __init__(self, run_dir: str, stdout=sys.stdout):
        self.run_dir, self.stdout = run_dir, stdout
        self.events: queue.Queue = queue.Queue()  # ("line", text) from stdin, ("found", search) from a search
        self.name = f"suite chess ({Path(run_dir).name})"
        self.options = {name: default for name, (default, _, _) in OPTIONS.items()}
        self.board = chess.Board()
        self.search: Search | None = None
        self.loaded = None
        self.loading = threading.Lock()

    def say(self, line: str) -> None:
        self.stdout.write(line + "\n")
        self.stdout.flush()

    def model(self):
        """The run's module, loaded on first use (from the main thread or a search's)."""
        with self.loading:
            if self.loaded is None:
                import torch

                from .play import load_player

                torch.set_num_threads(self.options["Threads"])
                self.loaded = load_player(self.run_dir)
            return self.loaded

    def answer(self) -> None:
        """``bestmove`` for the current search: its move, or the first legal move if it has none yet."""
        search, self.search = self.search, None
        if search.error is not None:
            raise search.error
        elapsed = int((time.monotonic() - search.started) * 1000)
        if search.move is None:
            move = next(iter(search.board.legal_moves))
            self.say(f"info string no move from the policy after {elapsed} ms: playing the first legal move")
        else:
            move = search.move
            self.say(f"info depth 1 nodes 1 time {elapsed} pv {move.uci()}")
        self.say(f"bestmove {move.uci()}")

    def stop(self) -> None:
        if self.search is not None:
            self.answer()

    def go(self, tokens: list[str]) -> None:
        self.stop()
        if self.board.is_game_over():
            self.say("bestmove 0000")
            return
        self.search = Search(self, self.board.copy(), parse_go(tokens))

    def setoption(self, tokens: list[str]) -> None:
        text = " ".join(tokens)
        name, _, value = text.removeprefix("name ").partition(" value ")
        name = next((n for n in OPTIONS if n.lower() == name.strip().lower()), None)
        if name is None:
            return
        _, low, high = OPTIONS[name]
        try:
            self.options[name] = min(max(int(value), low), high)
        except ValueError:
            self.say(f"info string bad value {value!r} for option {name}")
            return
        if name == "Threads" and self.loaded is not None:
            import torch

            torch.set_num_threads(self.options["Threads"])

    def command(self, words: list[str]) -> bool:
        """One command line; False on ``quit``."""
        command, rest = words[0], words[1:]
        if command == "uci":
            self.say(f"id name {self.name}")
            self.say("id author suite")
            for name, (default, low, high) in OPTIONS.items():
                self.say(f"option name {name} type spin default {default} min {low} max {high}")
            self.say("uciok")
        elif command == "isready":
            self.model()
            self.say("readyok")
        elif command == "setoption":
            self.setoption(rest)
        elif command == "ucinewgame":
            self.stop()
            self.board = chess.Board()
        elif command == "position":
            self.stop()
            try:
                self.board = parse_position(rest)
            except ValueError as e:
                self.say(f"info string bad position command ({e}); keeping the previous position")
        elif command == "go":
            self.go(rest)
        elif command == "stop":
            self.stop()
        elif command == "ponderhit" and self.search is not None:
            self.search.ponderhit()
            if self.search.move is not None or self.search.error is not None:  # found while pondering
                self.answer()
        elif command == "quit":
            self.stop()
            return False
        return True  # debug, register: nothing to do

    def serve(self, stdin=sys.stdin) -> None:
        """Read commands in a thread; answer them, and searches that end, in this one."""

        def read():
            for line in stdin:
                self.events.put(("line", line))
            self.events.put(("line", "quit"))

        threading.Thread(target=read, daemon=True).start()
        while True:
            search, timeout = self.search, None
            if search is not None and not search.wait_for_stop and search.deadline is not None:
                timeout = max(search.deadline - time.monotonic(), 0)
            try:
                kind, item = self.events.get(timeout=timeout)
            except queue.Empty:  # out of time
                self.answer()
                continue
            if kind == "found":
                if item is self.search and (item.error is not None or not item.wait_for_stop):
                    self.answer()
                elif item.error is not None:
                    raise item.error
                continue
            words = item.split()
            while words and words[0] not in COMMANDS:  # an unknown token: skip it and read on
                words = words[1:]
            if words and not self.command(words):
                return


def run(args) -> int:
    engine = Engine(args.run_dir)
    try:
        engine.serve()
    except suite.SuiteError as e:
        engine.say(f"info string error: {e}")
        raise
    return 0


def main(argv: list[str]) -> int:
    """``suite uci ARGS`` before torch and the plugins load (the ``suite.fast_commands`` entry point,
    suite/launch.py): GUIs and adapters time the handshake. Errors as the CLI gives them."""
    import argparse

    parser = argparse.ArgumentParser(prog="suite uci", description="run a trained chess run as a UCI engine on stdin/stdout")
    configure(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except suite.SuiteError as e:
        print(f"suite: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

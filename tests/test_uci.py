"""`suite uci` as a chess GUI or an adapter starts it: a real subprocess on stdin/stdout.

The handshake comes before the model is loaded, `go` answers within its time, `stop` ends an
infinite search, `ucinewgame` resets the position, and the engine plays through PolyGlot (the
UCI-to-xboard adapter) for python-chess's xboard client. The run is a tiny one trained on a
small PGN file (no Stockfish needed). The time to `uciok` is measured in bench/bench_uci.py."""
from __future__ import annotations

import contextlib
import io
import os
import queue
import random
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path

import chess
import chess.engine
import chess.pgn
import pytest

from suite import cli

from conftest import SUITE, TINY, run_dir_from

POLYGLOT = shutil.which("polyglot") or shutil.which("polyglot", path="/usr/games")


@pytest.fixture(scope="module")
def uci_run(tmp_path_factory) -> Path:
    """A tiny chess run trained 2 steps on 30 random games."""
    tmp = tmp_path_factory.mktemp("uci")
    rng, games = random.Random(0), []
    for _ in range(30):
        board = chess.Board()
        while board.ply() < 30 and not board.is_game_over():
            board.push(rng.choice(list(board.legal_moves)))
        games.append(str(chess.pgn.Game.from_board(board)))
    (tmp / "games.pgn").write_text("\n\n".join(games) + "\n")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["train", "--task", "chess", *TINY, "--data.pgn", str(tmp / "games.pgn"), "--data.batch_size", "32",
                         "--trainer.max_steps", "2", "--trainer.val_check_interval", "2", "--run.root", str(tmp / "runs")])
    assert code == 0, out.getvalue() + err.getvalue()
    return run_dir_from(out.getvalue())


class Engine:
    """`suite uci RUN` with its output read in a thread, so that a test can wait for a line with a timeout."""

    def __init__(self, run_dir: Path):
        self.proc = subprocess.Popen([SUITE, "uci", str(run_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(l.rstrip("\n")) for l in self.proc.stdout], daemon=True).start()

    def send(self, *lines: str) -> None:
        self.proc.stdin.write("".join(l + "\n" for l in lines))
        self.proc.stdin.flush()

    def until(self, prefix: str, timeout: float) -> list[str]:
        """The lines up to and including the first that starts with ``prefix``."""
        seen, end = [], time.monotonic() + timeout
        while True:
            try:
                seen.append(self.lines.get(timeout=max(end - time.monotonic(), 0)))
            except queue.Empty:
                raise AssertionError(f"no {prefix!r} line within {timeout} s; got {seen}") from None
            if seen[-1].startswith(prefix):
                return seen

    def silent(self, seconds: float) -> list[str]:
        time.sleep(seconds)
        return list(iter(lambda: None if self.lines.empty() else self.lines.get(), None))

    def bestmove(self, board: chess.Board, go: str, timeout: float) -> tuple[chess.Move, float]:
        """``go ...`` in ``board``'s position: (the legal move answered, seconds to answer)."""
        moves = " ".join(m.uci() for m in board.move_stack)
        self.send(f"position startpos moves {moves}" if moves else "position startpos")
        start = time.monotonic()
        self.send(go)
        line = self.until("bestmove", timeout)[-1]
        move = chess.Move.from_uci(line.split()[1])
        assert move in board.legal_moves, f"{line} in {board.fen()}"
        return move, time.monotonic() - start

    def close(self) -> int:
        if self.proc.poll() is None:
            self.send("quit")
        code = self.proc.wait(timeout=30)
        self.proc.stdin.close()
        return code


@pytest.fixture(scope="module")
def engine(uci_run):
    """One engine, loaded, for the tests of `go`: each sets its position."""
    e = Engine(uci_run)
    e.send("uci", "isready")
    e.until("readyok", 120)
    yield e
    assert e.close() == 0


def test_uci_is_answered_before_the_model_loads(uci_run, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(uci_run, broken)
    for weights in (broken / "weights").glob("*.safetensors"):
        weights.write_text("not safetensors")
    e = Engine(broken)
    e.send("uci")
    lines = e.until("uciok", 60)
    assert lines[0] == "id name suite chess (broken)" and lines[1] == "id author suite"
    assert [l.split(" type ")[0] for l in lines[2:-1]] == ["option name Threads", "option name Move Overhead"]
    e.send("isready")
    error = e.until("info string", 120)[-1]
    assert "weights" in error and "not a readable safetensors file" in error
    assert e.proc.wait(timeout=30) == 2
    stderr = e.proc.stderr.read().strip().splitlines()
    assert len(stderr) == 1 and stderr[0].startswith("suite: error:") and "not a readable safetensors file" in stderr[0]


def test_the_handshake_needs_neither_torch_nor_the_plugins(uci_run, tmp_path):
    """`suite uci` answers `uci` before torch loads (suite.fast_commands, suite/launch.py): with an
    importable torch that fails, the handshake is whole and only `isready` meets the failure."""
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("raise ImportError('torch is blocked by the test')\n")
    proc = subprocess.Popen([SUITE, "uci", str(uci_run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    out, err = proc.communicate("uci\nisready\n", timeout=60)
    assert out.splitlines()[0] == f"id name suite chess ({uci_run.name})" and "uciok" in out.splitlines()
    assert "torch is blocked by the test" in err and proc.returncode != 0


def test_go_answers_within_its_time(engine):
    board = chess.Board()
    move, seconds = engine.bestmove(board, "go movetime 200", timeout=5)
    assert seconds < 0.2 + 0.7  # the movetime, and 0.7 s for the pipes and a busy machine
    board.push(move)
    move, seconds = engine.bestmove(board, "go wtime 300 btime 300 winc 0 binc 0", timeout=5)
    assert seconds < 0.3 + 0.7  # never more than the time left on the clock (and the same 0.7 s)
    board.push(move)
    _, seconds = engine.bestmove(board, "go movetime 0", timeout=5)  # no time: the first legal move if need be
    assert seconds < 0.7
    for go in ("go nodes 1", "go depth 3", "go"):  # one forward pass meets any node or depth limit
        engine.bestmove(board, go, timeout=5)


def test_stop_ends_an_infinite_search_at_once(engine):
    board = chess.Board()
    engine.send("position startpos", "go infinite")
    assert not [l for l in engine.silent(0.5) if l.startswith("bestmove")]  # no answer before stop, though the move is found
    start = time.monotonic()
    engine.send("stop")
    line = engine.until("bestmove", 5)[-1]
    assert time.monotonic() - start < 0.7  # at once, with 0.7 s for the pipes and a busy machine
    assert chess.Move.from_uci(line.split()[1]) in board.legal_moves
    engine.send("go ponder movetime 100000")
    assert not [l for l in engine.silent(0.3) if l.startswith("bestmove")]
    engine.send("ponderhit")
    engine.until("bestmove", 5)  # the move is already found: answered at once


def test_ucinewgame_resets_and_bad_input_is_ignored_or_reported(engine):
    board = chess.Board()
    board.push_san("e4")
    move, _ = engine.bestmove(board, "go movetime 500", timeout=5)
    assert board.color_at(move.from_square) == chess.BLACK
    engine.send("ucinewgame", "go movetime 500")
    move = chess.Move.from_uci(engine.until("bestmove", 5)[-1].split()[1])
    assert move in chess.Board().legal_moves
    engine.send("xyzzy", "position fen not-a-fen", "position startpos moves e2e5", "position",
                "joho isready")  # an unknown token first: the rest of the line is read
    lines = engine.until("readyok", 5)
    assert len(lines) == 4 and all(l.startswith("info string bad position") for l in lines[:3]), lines
    engine.send("position fen 7k/6Q1/6K1/8/8/8/8/8 b - - 0 1", "go")
    assert engine.until("bestmove", 5)[-1] == "bestmove 0000"  # mated: no move


def test_plays_through_polyglot_as_an_xboard_engine(uci_run, tmp_path):
    if POLYGLOT is None:
        pytest.fail("PolyGlot is not installed: `apt-get install polyglot` (make setup installs it)")
    ini = tmp_path / "suite.ini"
    ini.write_text(f"[PolyGlot]\nEngineDir = {tmp_path}\nEngineCommand = {shlex.quote(SUITE)} uci {shlex.quote(str(uci_run))}\n"
                   f"LogFile = {tmp_path / 'polyglot.log'}\nLog = true\n[Engine]\nThreads = 1\n")
    try:
        engine = chess.engine.SimpleEngine.popen_xboard([POLYGLOT, str(ini)], timeout=120, cwd=tmp_path)
    except chess.engine.EngineError as e:  # PolyGlot's features come after the engine's uciok: see bench/bench_uci.py
        start, probe = time.monotonic(), Engine(uci_run)
        probe.send("uci")
        probe.until("uciok", 60)
        seconds = time.monotonic() - start
        probe.close()
        pytest.fail(f"{e}: PolyGlot sends its features after the engine's uciok, python-chess waits 2 s for them, "
                    f"and `suite uci` took {seconds:.1f} s to answer uci")
    rng, board = random.Random(0), chess.Board()
    try:
        assert engine.id["name"].startswith("suite chess")
        while board.ply() < 8 and not board.is_game_over():
            if board.turn == chess.WHITE:
                # a clock (PolyGlot sends go wtime/btime), then `st 1` (go movetime 980; st stays set once given)
                limit = chess.engine.Limit(white_clock=60, black_clock=60) if board.ply() < 4 else chess.engine.Limit(time=1)
                move = engine.play(board, limit).move
            else:
                move = rng.choice(list(board.legal_moves))
            assert move in board.legal_moves, f"{move} in {board.fen()}"
            board.push(move)
    finally:
        engine.quit()
    assert board.ply() == 8 or board.is_game_over()

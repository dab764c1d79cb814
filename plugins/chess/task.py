"""The chess tasks: the next move (chess), the outcome (chess-value), the mating move (chess-mate)."""
from __future__ import annotations

import suite

from . import data as chess_data
from .generate import cpu_cores, ensure_shards, stockfish_positions
from .heads import PolicyHead
from .mate import cached_mate_positions, mate_chunks
from .pgn import read_pgn
from .policy import move_probabilities, parse_fen, value_probabilities
from .tokenizer import ChessTokenizer


DEFAULT_MATE_PUZZLES = 10_000
DEFAULT_ON_POLICY_GAMES = 300


class ChessTask(suite.Task):
    """The next move: Stockfish's best move, or the move played in a PGN game."""

    name = "chess"
    domain = "chess"
    description = "next move from Stockfish-labelled self-play or PGN games; legal-move masked policy"
    objective = suite.Choice
    mask = "bidirectional"
    tokenizer_class = ChessTokenizer
    target = "move"

    def build_tokenizer(self, cfg):
        d = cfg["data"]
        return ChessTokenizer(mirror=bool(d.get("mirror", True)), attacks=bool(d.get("attacks", False)),
                              checks=bool(d.get("checks", False)),
                              counts=bool(d.get("attacks", False)) and bool(d.get("attack_counts", False)))

    def build_adapter(self, tokenizer, d_model, cfg):
        return suite.EmbeddingAdapter(tokenizer.vocab_size, d_model, padding_idx=None)

    def build_head(self, tokenizer, d_model, cfg):
        return PolicyHead(d_model)

    # -- data ----------------------------------------------------------------------------------
    def prepare_data(self, cfg):
        """Stockfish's labels and the mate-in-one puzzles, generated into the cache once."""
        d = cfg["data"]
        if not self.uses_pgn(d):
            ensure_shards(d)
        if self.puzzle_count(d):
            self.mate_puzzles(self.puzzle_count(d), cfg, load=False)

    @staticmethod
    def uses_pgn(d: dict) -> bool:
        source = d.get("source") or "auto"
        if source not in ("auto", "stockfish", "pgn"):
            raise suite.SuiteError(f"data.source must be auto, stockfish or pgn, not {source!r}")
        return source == "pgn" or (source == "auto" and bool(d.get("pgn")))

    def puzzle_count(self, d: dict) -> int:
        """``data.mate_puzzles``; null (the default) means 10,000 with Stockfish's data and none
        with a PGN file: a user's games train on the user's games unless puzzles are asked for."""
        if "mate_puzzles" not in d:  # chess-value, chess-mate
            return 0
        n = d["mate_puzzles"]
        if n is None or n == "auto":
            return 0 if self.uses_pgn(d) else DEFAULT_MATE_PUZZLES
        return int(n)

    def callbacks(self, cfg):
        """On-policy rounds (onpolicy.py): ``data.on_policy_games``; null (the default) means 300 with
        Stockfish's data and none with a PGN file."""
        d = cfg["data"]
        games = d.get("on_policy_games")
        games = (0 if self.uses_pgn(d) else DEFAULT_ON_POLICY_GAMES) if games is None else int(games)
        start = float(d.get("on_policy_from") or 0.0)
        if games < 0 or not 0.0 <= start <= 1.0:
            raise suite.SuiteError(f"data.on_policy_games must be 0 or more (not {games}) and data.on_policy_from "
                                   f"a share of the run between 0 and 1 (not {start})")
        if not games:
            return []
        from .onpolicy import OnPolicy  # imports Lightning: only a run needs it, not `suite tasks`
        return [OnPolicy({**d, "on_policy_games": games}, cfg["seed"])]

    def positions(self, cfg) -> chess_data.Positions:
        d = cfg["data"]
        if self.uses_pgn(d):
            if not d.get("pgn"):
                raise suite.SuiteError("data.source pgn needs --data.pgn FILE (or a glob; .pgn, .gz, .bz2, .zst)")
            p, counts, files = read_pgn(d["pgn"], min_elo=int(d.get("min_elo") or 0), max_positions=int(d["positions"]))
            print(counts.summary(files))
            if not len(p):
                others = "".join(f"{n} {name}, " for name, n in counts.variants.most_common())
                raise suite.SuiteError(f"--data.pgn {d['pgn']}: no usable standard-chess games ({others}{counts.malformed} malformed, "
                                       f"{counts.filtered} below --data.min_elo {d.get('min_elo') or 0}, {counts.empty} without moves)")
            return p
        return stockfish_positions(d)

    def splits(self, cfg) -> dict[str, chess_data.Positions]:
        d = cfg["data"]
        positions = self.positions(cfg)
        parts = chess_data.split_by_game(positions, float(d["val_percent"]), float(d["test_percent"]), fill=True)
        empty = [s for s in ("train", "val", "test") if not len(parts[s])]
        if empty:
            raise suite.SuiteError(self.too_little(d, chess_data.game_count(positions), len(positions), empty))
        for s in ("val", "test"):
            parts[s] = parts[s].select(range(min(len(parts[s]), int(d[f"{s}_size"]))))
        puzzles = self.puzzle_count(d)
        if puzzles:  # training also sees mate-in-one puzzles; their held-out part is the test_mate split
            mates = chess_data.split_by_game(self.mate_puzzles(puzzles, cfg), float(d["val_percent"]), float(d["test_percent"]))
            parts["train"].extend(mates["train"])
            parts["test_mate"] = mates["test"]
        print("positions by split (whole games): " + ", ".join(f"{s} {len(p)}" for s, p in parts.items()))
        for s, p in parts.items():
            if not len(p):
                raise suite.SuiteError(f"the {s} split is empty: give more puzzles (--data.mate_puzzles) or a larger data.test_percent")
        return parts

    def too_little(self, d: dict, games: int, positions: int, empty: list[str]) -> str:
        """The error for data too small to split, naming the settings that apply to its source."""
        what = f"{games} game(s), {positions} position(s)"
        if self.uses_pgn(d):
            return (f"--data.pgn {d['pgn']}: {what} give an empty {'/'.join(empty)} split (games are split whole: "
                    f"at least 3 games are needed, one each for train, val and test); give more games "
                    f"(more or larger --data.pgn files, a lower --data.min_elo, a higher --data.positions than "
                    f"{d['positions']}) or raise --data.val_percent / --data.test_percent")
        return (f"{self.name} data: {what} give an empty {'/'.join(empty)} split; raise --data.positions "
                f"(now {d['positions']}) or --data.val_percent / --data.test_percent")

    def mate_puzzles(self, n: int, cfg, load: bool = True) -> chess_data.Positions | None:
        d = cfg["data"]
        workers = int(d.get("workers") or cpu_cores())
        where = suite.cache_dir("chess", d.get("cache_dir"))
        source = d.get("mate_from") or "placement"
        if not load:
            mate_chunks(n, int(d["seed"]), where, workers, source=source)
            return None
        return cached_mate_positions(n, int(d["seed"]), where, workers, source=source)

    def build_data(self, tokenizer, cfg):
        mask_train = bool(cfg.get("model", {}).get("mask_loss", False))
        return {s: chess_data.PositionSet(tokenizer, p, self.target, legal=s != "train" or mask_train)
                for s, p in self.splits(cfg).items()}

    def collate(self, samples):
        return chess_data.collate(samples)

    # -- predict -------------------------------------------------------------------------------
    def predict(self, model, text, options):
        board = parse_fen(text)
        ranked = move_probabilities(model, board)
        top = int(options.get("top", 5))
        lines = [f"{ranked[0][0].uci()} ({board.san(ranked[0][0])})"]
        lines += [f"  {m.uci():<6} {board.san(m):<8} {p:6.1%}" for m, p in ranked[:top]]
        return "\n".join(lines)


class ChessValueTask(ChessTask):
    name = "chess-value"
    description = "game outcome (loss / draw / win for the side to move) from the position"
    objective = suite.Classification
    target = "value"

    def build_head(self, tokenizer, d_model, cfg):
        return suite.ClassifierHead(d_model, len(chess_data.VALUE_CLASSES), pooling="mean")

    def classes(self, tokenizer):
        return chess_data.VALUE_CLASSES

    def build_data(self, tokenizer, cfg):
        return {s: chess_data.PositionSet(tokenizer, p, "value") for s, p in self.splits(cfg).items()}

    def callbacks(self, cfg):
        return []  # the on-policy rounds label moves, not outcomes

    def predict(self, model, text, options):
        board = parse_fen(text)
        probs = value_probabilities(model, board)
        side = "white" if board.turn else "black"
        best = max(range(3), key=probs.__getitem__)
        return f"{chess_data.VALUE_CLASSES[best]} for {side} to move  " + "  ".join(
            f"{c} {p:.1%}" for c, p in zip(chess_data.VALUE_CLASSES, probs))


class ChessMateTask(ChessTask):
    name = "chess-mate"
    description = "find a mating move in mate-in-one positions (generated with python-chess)"

    def prepare_data(self, cfg):
        self.mate_puzzles(int(cfg["data"]["positions"]), cfg, load=False)

    def positions(self, cfg):
        return self.mate_puzzles(int(cfg["data"]["positions"]), cfg)

    def callbacks(self, cfg):
        return []

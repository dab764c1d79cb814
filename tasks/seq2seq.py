"""Sequence to sequence: an encoder reads the source, a decoder writes the target (translation,
speech to text), on an encoder-decoder preset of the backbone (``transformer-tiny``, ``-small``, ``-base``).

Batches are ``Seq2SeqBatch`` (batches.py). Training minimises the conditional log-likelihood of the
target given the source, teacher-forced, with label smoothing; evaluation decodes freely (greedy on
"val", beam search on the test splits) and compares with the references. Generation reads the
decoder a token at a time through a key-value cache (core/backbone.py's ``KVCache``): the encoder
and the cross-attention keys and values are computed once, and each new token costs the same
whatever was written before it. ``score`` is log p(target | source), the teacher-forced sum.

A task's tokenizer gives ``PAD``, ``BOS``, ``EOS`` (target vocabulary ids), ``vocab_size`` (the
target vocabulary), ``encode_target(text)`` and ``decode_target(ids)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .batches import Seq2SeqBatch
from .objective import Objective, mean_metric, metric_collection

IGNORE = -100
TEXT_METRICS = ("bleu", "chrf", "wer", "cer")


@dataclass
class Seq2SeqSettings:
    """model: the output layer, the loss and decoding of a sequence-to-sequence task"""

    label_smoothing: float = 0.1
    """share of the target probability spread over the vocabulary (Szegedy et al. 2016; 0.1 in Vaswani et al. 2017)"""
    beam: int = 4
    """beam width when the test splits and `suite predict` decode (1: greedy); validation decodes greedily"""
    length_penalty: float = 0.6
    """alpha of the beam's length normalisation ((5 + length) / 6) ** alpha (Wu et al. 2016); 0: none"""
    max_output: int = 64
    """the most target tokens generated for one input"""
    tie_embeddings: bool = True
    """the output layer is the target embedding (and, with a shared vocabulary, the source's too)"""


class Seq2SeqAdapter(nn.Module):
    """The two inputs of an encoder-decoder: ``source`` (the encoder's: token ids, patch vectors)
    and ``target`` (the decoder's token ids). Without ``target``, the source module embeds both
    (one shared vocabulary, as the Transformer's translation models): its weights appear once,
    under ``adapter.source.``."""

    def __init__(self, source: nn.Module, target: nn.Module | None = None):
        super().__init__()
        self.source = source
        if target is None:
            object.__setattr__(self, "target", source)  # the same module, not registered twice
        else:
            self.target = target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.source(x)

    def target_embedding(self) -> nn.Embedding:
        return next(m for m in self.target.modules() if isinstance(m, nn.Embedding))


class OutputHead(nn.Module):
    """Decoder states (B, T, d) -> target-vocabulary logits (B, T, V). Tied (the default): the
    logits are the states times the target embedding, which the head reads from the adapter and
    does not hold (``tie``, called by the module once both exist); untied: a linear layer of its own."""

    def __init__(self, d_model: int, vocab_size: int, tie: bool = True):
        super().__init__()
        if not tie:
            self.out = nn.Linear(d_model, vocab_size, bias=False)
            nn.init.normal_(self.out.weight, std=0.02)
        self.embedding: nn.Embedding | None = None

    def tie(self, adapter: nn.Module) -> None:
        if not hasattr(self, "out"):
            object.__setattr__(self, "embedding", adapter.target_embedding())

    def forward(self, hidden: torch.Tensor, batch: dict | None = None) -> torch.Tensor:
        if hasattr(self, "out"):
            return self.out(hidden)
        if self.embedding is None:
            raise RuntimeError("a tied OutputHead is read after tie(adapter)")
        return F.linear(hidden, self.embedding.weight)


# -- decoding ----------------------------------------------------------------------------------
class Reader:
    """The decoder of ``model`` over the sources of ``batch``, read a token at a time: ``step(tokens)``
    gives the log-probabilities of the next token after ``tokens`` (N, t). With ``cache`` the new
    token alone goes through the decoder (keys and values of the earlier ones kept); without, the
    whole prefix is read again (the reference the cache must equal)."""

    def __init__(self, model, batch: dict, cache: bool = True):
        self.model, self.use_cache = model, cache
        self.memory, self.memory_padding = model.encode(batch)
        self.positions = batch.get("positions")  # the decoder's own numbering, (B, >= max_new + 1)
        self.cache = model.backbone.new_cache() if cache else None

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[1]
        pos = None if self.positions is None else self.positions[:, t - 1: t] if self.use_cache else self.positions[:, :t]
        if self.use_cache:
            logits = self.model.decode(tokens[:, -1:], self.memory, self.memory_padding, positions=pos, cache=self.cache)
        else:
            logits = self.model.decode(tokens, self.memory, self.memory_padding, positions=pos)
        return logits[:, -1].float().log_softmax(-1)

    def select(self, rows: torch.Tensor) -> None:
        """Keep the rows ``rows`` of everything read so far (beam search's surviving hypotheses)."""
        self.memory = self.memory.index_select(0, rows)
        if self.memory_padding is not None:
            self.memory_padding = self.memory_padding.index_select(0, rows)
        if self.positions is not None:
            self.positions = self.positions.index_select(0, rows)
        if self.cache is not None:
            self.cache.reorder(rows)


@torch.no_grad()
def generate(model, batch: dict, start: torch.Tensor, max_new: int, eos: int, *, beam: int = 1,
             length_penalty: float = 0.0, cache: bool = True) -> torch.Tensor:
    """Outputs for the sources of ``batch`` (``source``, optional ``source_padding``,
    ``source_positions`` and the decoder's ``positions``): (B, max_new) token ids after ``start``
    (B, 1), the first decoder token (BOS), EOS-terminated and EOS-padded. ``beam`` 1 is greedy."""
    reader = Reader(model, batch, cache)
    if beam > 1:
        return beam_search(reader, start, max_new, eos, beam, length_penalty)
    tokens, done = start, torch.zeros(start.shape[0], dtype=torch.bool, device=start.device)
    for _ in range(max_new):
        nxt = reader.step(tokens).argmax(-1).masked_fill(done, eos)
        tokens = torch.cat([tokens, nxt[:, None]], 1)
        done |= nxt == eos
        if done.all():
            break
    return F.pad(tokens[:, 1:], (0, max_new + 1 - tokens.shape[1]), value=eos)


def length_norm(length: int, alpha: float) -> float:
    """GNMT's length penalty ((5 + length) / 6) ** alpha (Wu et al. 2016), as the Transformer's beam uses."""
    return ((5 + length) / 6) ** alpha


def beam_search(reader: Reader, start: torch.Tensor, max_new: int, eos: int, K: int, alpha: float) -> torch.Tensor:
    """Beam search of width K: at each step the 2K best extensions of the K live hypotheses; those
    ending in EOS among the best K are finished (scored by log-probability / length_norm), the best
    K others live on. A row stops once K of its hypotheses finished or none of its live ones can
    beat its best finished one; at ``max_new`` the live ones finish too. Returns each row's best finished hypothesis, (B, max_new)."""
    B, dev = start.shape[0], start.device
    reader.select(torch.arange(B, device=dev).repeat_interleave(K))
    tokens = start.repeat_interleave(K, 0)  # (B * K, t)
    scores = torch.full((B, K), -math.inf, device=dev)
    scores[:, 0] = 0.0  # one live hypothesis at first: the others would repeat it
    best = torch.full((B,), -math.inf, device=dev)
    best_tokens = torch.full((B, max_new + 1), eos, dtype=torch.long, device=dev)
    n_done, finished = torch.zeros(B, dtype=torch.long, device=dev), torch.zeros(B, dtype=torch.bool, device=dev)
    offset = torch.arange(B, device=dev)[:, None] * K
    for t in range(1, max_new + 1):
        logp = reader.step(tokens)  # (B * K, V)
        V = logp.shape[-1]
        top, idx = (scores[..., None] + logp.view(B, K, V)).view(B, K * V).topk(2 * K, dim=1)  # (B, 2K), best first
        rows, tok = (offset + idx // V).view(-1), (idx % V)  # the hypothesis each extends, the token it adds
        ended = (tok == eos) & (torch.arange(2 * K, device=dev) < K) & ~finished[:, None]
        if t == max_new:  # out of room: the live hypotheses end here too
            ended = (torch.arange(2 * K, device=dev) < K) & ~finished[:, None] & torch.isfinite(top)
        normed = (top / length_norm(t, alpha)).masked_fill(~ended, -math.inf)
        row_best, j = normed.max(1)
        better = row_best > best
        if better.any():
            src = rows.view(B, 2 * K).gather(1, j[:, None]).squeeze(1)
            ending = torch.cat([tokens.index_select(0, src), tok.gather(1, j[:, None])], 1)
            best_tokens[better, : t + 1] = ending[better]
            best_tokens[better, t + 1:] = eos
            best = torch.where(better, row_best, best)
        n_done += ended.sum(1)
        finished |= n_done >= K
        if finished.all() or t == max_new:
            break
        live = top.masked_fill(tok == eos, -math.inf)
        scores, keep = live.topk(K, dim=1)  # at most K of the 2K end in EOS: K live ones remain
        # A row whose best finished hypothesis no live one can overtake is done: log-probabilities only
        # fall as a hypothesis grows, so the most a live one can reach is its score over the largest norm.
        finished |= best >= scores[:, 0] / max(length_norm(t + 1, alpha), length_norm(max_new, alpha))
        if finished.all():
            break
        keep_rows = rows.view(B, 2 * K).gather(1, keep).view(-1)
        tokens = torch.cat([tokens.index_select(0, keep_rows), tok.gather(1, keep).view(-1, 1)], 1)
        reader.select(keep_rows)
    return best_tokens[:, 1:]


@torch.no_grad()
def score(model, batch: dict) -> torch.Tensor:
    """log p(target | source) of each row (B,): the teacher-forced sum of the target tokens' and
    EOS's log-probabilities (no label smoothing)."""
    logp = model(batch).float().log_softmax(-1)
    targets = batch["targets"]
    scored = targets != IGNORE
    picked = logp.gather(-1, targets.clamp_min(0)[..., None]).squeeze(-1)
    return (picked * scored).sum(1)


def teacher_forced(metrics, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Update ``metrics``' loss and token accuracy with next-token ``logits`` (B, T, V) against
    ``targets`` (B, T, IGNORE where nothing is predicted); returns where targets are scored."""
    metrics["loss"].update(F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE))
    scored = targets != IGNORE
    metrics["token_accuracy"].update(((logits.argmax(-1) == targets) & scored).sum() / scored.sum().clamp_min(1),
                                     weight=scored.sum())
    return scored


def until_eos(ids: list[int], eos: int) -> list[int]:
    return ids[: ids.index(eos)] if eos in ids else ids


# -- metrics -----------------------------------------------------------------------------------
def corpus_metric(kind: str):
    """BLEU or chrF of a corpus through sacreBLEU, summed from its sentence statistics, so that
    batches and devices add up to the corpus score sacreBLEU gives the whole (13a tokenisation,
    exponential smoothing, and the effective order: n-gram orders no output is long enough to have
    are left out, so a corpus of one-word outputs is scored on its words rather than 0; chrF with
    character n-grams up to 6, beta 2)."""
    from sacrebleu.metrics import BLEU, CHRF
    from torchmetrics import Metric

    class CorpusScore(Metric):
        full_state_update = False

        def __init__(self):
            super().__init__()
            self.scorer = BLEU(effective_order=True) if kind == "bleu" else CHRF()
            width = len(self.scorer._extract_corpus_statistics(["a"], [["a"]])[0])
            self.add_state("stats", default=torch.zeros(width, dtype=torch.float64), dist_reduce_fx="sum")

        def update(self, hypotheses: list[str], references: list[list[str]]) -> None:
            n = max(len(r) for r in references)  # a repeated reference changes neither statistic
            streams = [[r[min(i, len(r) - 1)] for r in references] for i in range(n)]
            stats = self.scorer._extract_corpus_statistics(hypotheses, streams)
            self.stats += torch.tensor(stats, dtype=torch.float64).sum(0)

        def compute(self):
            return torch.tensor(self.scorer._compute_score_from_stats([int(x) for x in self.stats.tolist()]).score, dtype=torch.float64)

    return CorpusScore()


def error_rate(kind: str):
    from torchmetrics.text import CharErrorRate, WordErrorRate

    return WordErrorRate() if kind == "wer" else CharErrorRate()


class Seq2Seq(Objective):
    """Label-smoothed cross-entropy on the target, teacher-forced; at evaluation, loss and token
    accuracy teacher-forced, and the freely decoded output's exact match (equal to any reference)
    and the task's ``text_metrics`` (bleu, chrf through sacreBLEU; wer, cer through torchmetrics)."""

    primary = "exact_match"
    batch = Seq2SeqBatch

    def __init__(self, task, tokenizer, cfg):
        super().__init__(task, tokenizer, cfg)
        self.text_metrics = tuple(getattr(task, "text_metrics", ("bleu", "chrf")))
        unknown = set(self.text_metrics) - set(TEXT_METRICS)
        if unknown:
            raise ValueError(f"task {task.name}: text_metrics {sorted(unknown)} are not among {TEXT_METRICS}")
        self.settings = {**vars(Seq2SeqSettings()), **cfg.get("model", {})}
        backbone = cfg.get("backbone", {})
        if not (backbone.get("n_encoder_layers") and backbone.get("n_decoder_layers")):
            from suite.errors import SuiteError

            raise SuiteError(f"task {task.name} is sequence to sequence: it needs an encoder-decoder backbone "
                             f"(--backbone.preset transformer-tiny, transformer-small, transformer-base), not preset "
                             f"{backbone.get('preset')!r}")

    def make_metrics(self):
        metrics = {"exact_match": mean_metric(), "token_accuracy": mean_metric(), "loss": mean_metric()}
        for name in self.text_metrics:
            metrics[name] = corpus_metric(name) if name in ("bleu", "chrf") else error_rate(name)
        return metric_collection(metrics)

    def loss(self, model, batch):
        logits = model(batch)
        return F.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten(), ignore_index=IGNORE,
                               label_smoothing=float(self.settings["label_smoothing"]))

    def outputs(self, model, batch: dict, beam: int | None = None) -> list[str]:
        """The decoded text of every row's source: beam search of width ``beam`` (the settings' by default)."""
        s, tok = self.settings, self.tokenizer
        beam = int(s["beam"] if beam is None else beam)
        start = torch.full((batch["source"].shape[0], 1), tok.BOS, dtype=torch.long, device=batch["source"].device)
        out = generate(model, batch, start, int(s["max_output"]), tok.EOS, beam=beam, length_penalty=float(s["length_penalty"]))
        return [tok.decode_target(until_eos(row, tok.EOS)) for row in out.tolist()]

    def evaluate(self, model, batch, split):
        logits = model(batch)
        targets = batch["targets"]
        m = self.metrics(split, logits.device)
        teacher_forced(m, logits, targets)
        got = self.outputs(model, batch, beam=1 if split == "val" else None)
        refs = batch.get("references") or [[self.tokenizer.decode_target(until_eos([t for t in row if t != IGNORE], self.tokenizer.EOS))]
                                           for row in targets.tolist()]
        m["exact_match"].update(torch.tensor([float(g in r) for g, r in zip(got, refs)], device=logits.device))
        for name in self.text_metrics:
            if name in ("bleu", "chrf"):
                m[name].update(got, refs)
            else:
                m[name].update(got, [r[0] for r in refs])

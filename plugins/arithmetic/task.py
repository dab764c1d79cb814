"""The arithmetic task: integer +, -, * answered digit by digit, greedy decoding in predict."""
from __future__ import annotations

import suite

from .data import FixedSet, TrainStream, collate, encode
from .positions import position_settings, scale_of
from .problems import OPS, PROBLEM, digit_ranges, read_answer
from .settings import ArithmeticData
from .tokenizer import make_tokenizer, writes_carries


class ArithmeticTask(suite.Task):
    name = "arithmetic"
    domain = "maths"
    description = "integer +, -, * answered digit by digit; held-out and longer-operand test splits"
    objective = suite.Generation
    mask = "prefix"
    tokenizer_class = suite.CharTokenizer
    settings = {"data": ArithmeticData}

    def build_tokenizer(self, cfg):
        return make_tokenizer(cfg["data"].get("carries", False))

    def build_adapter(self, tokenizer, d_model, cfg):
        return suite.EmbeddingAdapter(tokenizer.vocab_size, d_model)

    def build_head(self, tokenizer, d_model, cfg):
        return suite.TokenHead(d_model, tokenizer.vocab_size)

    def build_data(self, tokenizer, cfg):
        d, seed = cfg["data"], int(cfg["seed"])
        bad = set(d["ops"]) - set(OPS)
        if bad or not d["ops"]:
            raise suite.SuiteError(f"data.ops must be made of + - *, not {d['ops']!r}")
        if writes_carries(tokenizer) and ("*" in d["ops"] or not d["reverse"]):
            raise suite.SuiteError("data.carries (on by default) needs data.reverse true and data.ops of + and - only; "
                                   "pass --data.carries false")
        ranges = digit_ranges(d)
        abacus, _, region = position_settings(d)
        need = 3 * region
        if abacus and cfg["backbone"].get("positions") == "learned" and cfg["backbone"]["max_len"] < need:
            raise suite.SuiteError(f"data.position_ids abacus with learned positions needs backbone.max_len >= {need} "
                                   f"for these operand lengths, not {cfg['backbone']['max_len']}")
        splits = {
            "train": TrainStream(tokenizer, d, seed),
            "val": FixedSet(tokenizer, d, "val", d["val_size"], 1, d["ops"], ranges["train"]),
            "test": FixedSet(tokenizer, d, "test", d["test_size"], 2, d["ops"], ranges["train"]),
            "test_add3": FixedSet(tokenizer, d, "test", d["test_size"], 3, "+", (3, 3)),
        }
        # Longer operands than training ever saw: all of them are held out by construction.
        for seed_, name in enumerate((n for n in ranges if n != "train"), start=4):
            splits[name] = FixedSet(tokenizer, d, None, d["test_size"], seed_, d["ops"], ranges[name])
        return splits

    def collate(self, samples):
        return collate(samples)

    def predict(self, model, text, options):
        m = PROBLEM.match(text)
        if not m:
            raise suite.SuiteError(f"{text!r} is not a problem of the form A+B, A-B or A*B with non-negative integers")
        problem = f"{m[1]}{m[2]}{m[3]}="
        d = model.cfg["data"]
        abacus, _, region = position_settings(d)
        carries = writes_carries(model.tokenizer)
        max_new = int(options.get("max_tokens", (len(m[1]) + len(m[3]) + 2) * (1 + carries)))
        if abacus and max_new // (1 + carries) + 2 >= region:
            raise suite.SuiteError(f"this run numbers up to {region - 3} answer digits by significance; {problem} may need {max_new}")
        sign_first = d.get("sign_first", False)
        batch = collate([encode(model.tokenizer, problem, "", d["reverse"], scale_of(max_new + 2, 0) if abacus else None, region,
                                sign_first, carries)], room=max_new)
        P = int(batch["prefix_len"][0])
        out = suite.greedy_decode(model, batch["inputs"][:, :P], batch["padding"][:, :P], max_new, model.tokenizer.EOS,
                                  batch.get("positions"))
        answer = model.tokenizer.decode(out[0].tolist()[: (out[0] == model.tokenizer.EOS).int().argmax() or None])
        return read_answer(answer, d["reverse"], sign_first, carries)

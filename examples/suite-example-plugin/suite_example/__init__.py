"""An external suite plugin: is a string of digits a palindrome?

Reads top to bottom as every plugin should: tokenizer, adapter, head, data, the task, the hook.
"""
import random

import torch
from torch.utils.data import Dataset

import suite


# -- tokenizer: one id per digit ---------------------------------------------------------------
def make_tokenizer():
    return suite.CharTokenizer(alphabet="0123456789")


# -- data: half palindromes, half strings that differ from one in a single digit -----------------
def sample(rng: random.Random, length: int) -> tuple[str, int]:
    half = [rng.choice("0123456789") for _ in range(length // 2)]
    middle = [rng.choice("0123456789")] if length % 2 else []
    digits = half + middle + half[::-1]
    if rng.random() < 0.5:
        return "".join(digits), 1
    i = rng.randrange(length // 2)
    digits[i] = rng.choice([d for d in "0123456789" if d != digits[i]])
    return "".join(digits), 0


class Palindromes(Dataset):
    def __init__(self, tokenizer, size: int, lengths: tuple[int, int], seed: int):
        rng = random.Random(seed)
        self.items = [sample(rng, rng.randint(*lengths)) for _ in range(size)]
        self.tokenizer = tokenizer

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        text, label = self.items[i]
        return self.tokenizer.encode(text), label


def collate(samples):
    T = max(len(ids) for ids, _ in samples)
    inputs = torch.tensor([ids + [0] * (T - len(ids)) for ids, _ in samples])
    return {"inputs": inputs, "padding": inputs == 0, "label": torch.tensor([y for _, y in samples])}


# -- the task ------------------------------------------------------------------------------------
class PalindromeTask(suite.Task):
    name = "palindrome"
    domain = "toy"
    description = "is a string of digits a palindrome? (the example plugin)"
    objective = suite.Classification
    tokenizer_class = suite.CharTokenizer
    defaults = {
        "data": {"min_length": 4, "max_length": 12, "train_size": 20000, "eval_size": 1000},
        "trainer": {"max_steps": 600, "val_check_interval": 200},
    }

    def build_tokenizer(self, cfg):
        return make_tokenizer()

    def build_adapter(self, tokenizer, d_model, cfg):
        return suite.EmbeddingAdapter(tokenizer.vocab_size, d_model)

    def build_head(self, tokenizer, d_model, cfg):
        return suite.ClassifierHead(d_model, 2)

    def classes(self, tokenizer):
        return ["no", "yes"]

    def build_data(self, tokenizer, cfg):
        d, seed = cfg["data"], cfg["seed"]
        lengths = (d["min_length"], d["max_length"])
        return {
            "train": Palindromes(tokenizer, d["train_size"], lengths, seed),
            "val": Palindromes(tokenizer, d["eval_size"], lengths, seed + 1),
            "test": Palindromes(tokenizer, d["eval_size"], lengths, seed + 2),
        }

    def collate(self, samples):
        return collate(samples)

    def predict(self, model, text, options):
        if not text or not text.isdigit():
            raise suite.SuiteError(f"{text!r} is not a string of digits")
        probs = model(collate([(model.tokenizer.encode(text), 0)])).softmax(-1)[0]
        return f"{'yes' if probs[1] > 0.5 else 'no'} ({float(probs.max()):.3f})"


@suite.hookimpl
def suite_register_tasks(register):
    register(PalindromeTask())

"""`python record_samples.py OUT_DIR suite-arguments...`: the real `suite` CLI, recording which
training samples (batch["index"]) each process trained on into OUT_DIR/seen-<rank>.json (in a
joint run, "<task>:<index>" for the tasks whose batches carry an index).

Lightning's DDP launcher starts the other ranks by running this same script again, so every
rank records its own samples."""
import json
import sys
from pathlib import Path

from pytorch_lightning.utilities.rank_zero import rank_zero_only

from suite import cli
from suite.module import SuiteModule

seen: list = []
original = SuiteModule.training_step


def recording_step(self, batch, batch_idx):
    name, data = batch if len(self.names) > 1 else (None, batch)
    if "index" in data:
        seen.extend(data["index"].tolist() if name is None else [f"{name}:{i}" for i in data["index"].tolist()])
    return original(self, batch, batch_idx)


SuiteModule.training_step = recording_step
code = cli.main(sys.argv[2:])
Path(sys.argv[1], f"seen-{rank_zero_only.rank}.json").write_text(json.dumps(seen))
sys.exit(code)

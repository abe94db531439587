"""A killed training run resumes from its last checkpoint with the same command: same global step,
optimiser state restored, and no batch repeated or skipped (checked on the recorded example ids)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from idfsplade.model import load_sparse_encoder
from idfsplade.train import load_config, train
from idfsplade.train.trainer import RecordingTrainer


class Killed(RuntimeError):
    pass


def _config(tmp_path: Path, adi_path: Path, name: str):
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""
output_dir: {tmp_path / name}
seed: 7
student: {{model: splade-tiny, max_seq_length: 32}}
data: {{dataset: {adi_path}, split: test, negatives: 2, cache_dir: {tmp_path / 'data'}}}
teachers: {{members: [{{kind: bm25}}], scale: 30, cache_dir: {tmp_path / 'teachers'}}}
loss: {{flops_weight: 1.0e-3, flops_warmup_ratio: 0.5}}
training: {{max_steps: 6, batch_size: 2, save_steps: 3, logging_steps: 1, torch_threads: 2, learning_rate: 1.0e-4}}
evaluation: {{dataset: null}}
""")
    return load_config(path)


def _steps(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _weights(model) -> np.ndarray:
    return np.concatenate([p.detach().numpy().ravel() for p in model.parameters() if p.requires_grad])


@pytest.mark.slow  # two tiny training runs: ~12 s on 2 quiet cores, minutes on a loaded machine
def test_killed_run_resumes_from_last_checkpoint(tmp_path, adi_path, monkeypatch):
    reference_dir = train(_config(tmp_path, adi_path, "reference"))
    reference = _steps(tmp_path / "reference" / "samples.jsonl")
    assert [r["step"] for r in reference] == [1, 2, 3, 4, 5, 6]

    original = RecordingTrainer.compute_loss

    def dies_at_step_5(self, model, inputs, *args, **kwargs):
        if self.state.global_step == 4:  # steps 1-4 done, checkpoint-3 on disk, step 4 not saved
            raise Killed
        return original(self, model, inputs, *args, **kwargs)

    config = _config(tmp_path, adi_path, "killed")
    monkeypatch.setattr(RecordingTrainer, "compute_loss", dies_at_step_5)
    with pytest.raises(Killed):
        train(config)
    run_dir = tmp_path / "killed"
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["checkpoint-3"]
    before = _steps(run_dir / "samples.jsonl")
    assert [r["step"] for r in before] == [1, 2, 3, 4]

    monkeypatch.setattr(RecordingTrainer, "compute_loss", original)
    model_dir = train(config)  # the same command
    after = _steps(run_dir / "samples.jsonl")[len(before):]
    # continues at step 4 (the one not checkpointed), nothing before it replayed ...
    assert [r["step"] for r in after] == [4, 5, 6]
    # ... and the batches are exactly those of the uninterrupted run: none repeated, none skipped
    assert [r["examples"] for r in before[:3] + after] == [r["examples"] for r in reference]
    state = json.loads((run_dir / "checkpoints" / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6

    # optimiser (Adam moments), scheduler and RNG restored: the weights equal the uninterrupted run's
    resumed, uninterrupted = load_sparse_encoder(str(model_dir)), load_sparse_encoder(str(reference_dir))
    np.testing.assert_allclose(_weights(resumed), _weights(uninterrupted), rtol=0, atol=1e-6)
    assert not np.allclose(_weights(resumed), _weights(load_sparse_encoder("splade-tiny", idf=model_dir / "idf.json")))

    # the saved model serves as is: query route = the corpus idf, idf.json beside it
    idf = json.loads((model_dir / "idf.json").read_text())
    query_route = resumed[0].sub_modules["query"][0]
    vocab = query_route.tokenizer.get_vocab()
    assert query_route.weight[vocab["retrieval"]].item() == pytest.approx(idf["retrieval"], rel=1e-5)

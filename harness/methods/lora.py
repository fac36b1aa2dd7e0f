"""`lora`: the `contrastive` objective, data and batches, training only a peft LoRA adapter.

The adapter sits on the attention projections: `query/key/value` in BERT-style encoders
(MiniLM, BGE, SciNCL), `q/k/v` in MPNet, `q_proj/k_proj/v_proj` in decoder-style models; set
`lora_target_modules` for anything else. The saved model is the adapter plus the
sentence-transformers config; its `adapter_config.json` names the base model's local folder, so
`SentenceTransformer(path)` reloads it offline on the machine that trained it.
Hard negatives (`hard_negative_miner = "bm25" | "dense"`) work as in `contrastive`; the dense
miner scores with the base model before the adapter is added.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.methods.contrastive import Contrastive, ContrastiveConfig
from harness.methods.st_training import LoraFields, add_lora


@dataclass(frozen=True)
class LoRAConfig(LoraFields, ContrastiveConfig):
    learning_rate: float = 1e-3  # adapters need a larger step than full fine-tuning (5e-4 was worse on dev)


class LoRA(Contrastive):
    name = "lora"
    Config = LoRAConfig

    def prepare(self, model, config: LoRAConfig) -> dict:
        targets = add_lora(model, config)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        return {"finetune": "lora", "lora_target_modules": list(targets), "trainable_parameters": trainable}

"""The methods wing: every method, its config and the helpers only methods use.

A method is a class with a `name`, a `Config` (a frozen dataclass mixing in `base.MethodConfig`) and
`fit(task, config, context) -> Fitted` (`base`). The sentence-transformers methods (`frozen`,
`contrastive`, `lora`, `heal`) train through `st_training`, the causal-LM methods (`llm-frozen`,
`llm-cl`, `lbr`) through `causal_training`; both share `selection` (dev-set model selection), the
config vocabulary and the `train_info` keys. `bm25` needs neither. Shared modules outside this
package look methods up here by name only (`METHODS`).
"""

from harness.registry import Registry

METHODS = Registry(
    "method",
    "harness.methods",
    {
        "bm25": "harness.methods.bm25:BM25",
        "frozen": "harness.methods.frozen:Frozen",
        "contrastive": "harness.methods.contrastive:Contrastive",
        "lora": "harness.methods.lora:LoRA",
        "heal": "harness.methods.heal:HEAL",
        "llm-frozen": "harness.methods.llm_embedders:LLMFrozen",
        "llm-cl": "harness.methods.llm_embedders:LLMContrastive",
        "lbr": "harness.methods.lbr:LBR",
    },
)


def register_method(name: str):
    """Decorator for plugin modules loaded with `--plugin`."""

    def decorate(cls):
        METHODS.register(name, cls)
        return cls

    return decorate

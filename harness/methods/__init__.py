"""Methods: a name, a config dataclass and `fit(task, config, context) -> Encoder | Searcher`."""

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
        "llm-frozen": "harness.methods.llm:LLMFrozen",
        "llm-cl": "harness.methods.llm:LLMContrastive",
        "lbr": "harness.methods.lbr:LBR",
    },
)


def register_method(name: str):
    """Decorator for plugin modules loaded with `--plugin`."""

    def decorate(cls):
        METHODS.register(name, cls)
        return cls

    return decorate

"""Hyper-parameters of the Keras models and of their training, and the check that a user's
settings name real fields. Light on purpose (no TensorFlow import): the command line checks
``--model-param``/``--train-param`` here before any stage runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from .errors import ArgumentError

MODEL_NAMES = ("mf", "mf-bias", "deep", "hybrid", "neumf", "implicit")
USES_TEXT = {"hybrid", "neumf", "implicit"}


@dataclass
class ModelConfig:
    """Hyper-parameters of the model family (defaults tuned on MovieLens-100k's training
    split with a validation split carved from it)."""

    name: str = "hybrid"
    factors: int = 32
    hidden: tuple[int, ...] = (128, 64)
    dropout: float = 0.2
    text_units: int = 32
    l2: float = 1e-4
    item_dropout: float = 0.25  # share of examples whose item id is hidden (hybrid models)
    min_rating: float = 1.0
    max_rating: float = 5.0
    global_mean: float = 3.5
    seed: int = 42
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["hidden"] = list(self.hidden)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        data = dict(data)
        data["hidden"] = tuple(data.get("hidden", ()))
        return cls(**data)


@dataclass
class TrainConfig:
    epochs: int = 40
    batch_size: int = 1024
    learning_rate: float = 2e-3
    weight_decay: float = 0.0  # > 0: AdamW (decoupled weight decay on every weight)
    patience: int = 3
    validation_share: float = 0.1
    negatives: int = 4  # sampled negatives per positive (implicit model)
    seed: int = 42
    verbose: int = 0

    def to_dict(self) -> dict:
        return asdict(self)



#: Fields a user does not set: the model's name and seed come from their own options.
_NOT_SETTABLE = {"name", "seed"}


def check_settings(values: dict | None, config_class, what: str) -> dict:
    """Return ``values`` when every key is a settable field of ``config_class``; otherwise raise
    ``ArgumentError`` naming the bad key and listing the valid ones.

    Example:
        >>> check_settings({"epochs": 3}, TrainConfig, "--train-param")
        {'epochs': 3}
        >>> check_settings({"epoch": 3}, TrainConfig, "--train-param")
        Traceback (most recent call last):
        ...
        hybrid.errors.ArgumentError: --train-param: unknown key 'epoch'; valid keys: batch_size, epochs, learning_rate, negatives, patience, validation_share, verbose, weight_decay
    """
    values = dict(values or {})
    valid = sorted(f.name for f in fields(config_class) if f.name not in _NOT_SETTABLE)
    for key in values:
        if key not in valid:
            raise ArgumentError(f"{what}: unknown key {key!r}; valid keys: {', '.join(valid)}")
    return values


def check_model_name(name: str) -> str:
    if name not in MODEL_NAMES:
        raise ArgumentError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return name

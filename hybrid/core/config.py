"""Hyper-parameters of the Keras models and of their training, and the check that a user's
settings name real fields. Light on purpose (no TensorFlow import): the command line checks
``--model-param``/``--train-param`` here before any stage runs."""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, fields

from hybrid.core.errors import ArgumentError

MODEL_NAMES = ("mf", "mf-bias", "deep", "hybrid", "neumf", "implicit")
USES_TEXT = {"hybrid", "neumf", "implicit"}
USES_HISTORY = {"hybrid"}  # SVD++'s pooled history of the user's rated items


@dataclass
class ModelConfig:
    """Hyper-parameters of the model family (defaults tuned on MovieLens-100k's training
    split with a validation split carved from it)."""

    name: str = "hybrid"
    factors: int = 32
    hidden: tuple[int, ...] = (128, 64)
    dropout: float = 0.2
    text_units: int = 32
    l2: float = 1e-4  # per example, times the squared norm of each embedding row it looks up
    item_dropout: float = 0.25  # share of examples whose item id is hidden (hybrid models)
    history: int = 50  # items pooled per user in SVD++'s implicit term (hybrid; 0: none)
    blend: bool = True  # rating models: blend with item and user KNNBaseline (hybrid.models.blend)
    min_rating: float = 1.0
    max_rating: float = 5.0
    global_mean: float = 3.5
    seed: int = 42

    def to_dict(self) -> dict:
        data = asdict(self)
        data["hidden"] = list(self.hidden)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        data = dict(data)
        data["hidden"] = tuple(data.get("hidden", ()))
        return cls(**data)


#: "adam": Keras's Adam, which moves every embedding row (and its moments) at every step;
#: "lazy-adam": only the rows a batch looked up (``hybrid.models.keras.optimizers.LazyAdam``), so a step costs
#: the same with a million products as with a thousand (661 ms -> 3 ms per step at 1M x 64);
#: "auto": adam while the largest embedding table has at most ``LAZY_ABOVE`` rows, lazy-adam above.
OPTIMIZERS = ("auto", "adam", "lazy-adam")
LAZY_ABOVE = 100_000


def check_steps(value) -> int:
    """``steps_per_execution``: Keras runs that many training steps in one call of its compiled
    function (same batches, same updates; callbacks see every group's last step). On 2 cores at
    3.4M ratings, 8 instead of 1 raised the hybrid model's throughput by about a tenth."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ArgumentError(f"steps_per_execution must be a positive whole number, got {value!r}")
    return int(value)


def check_optimizer(name: str, weight_decay: float = 0.0) -> str:
    if name not in OPTIMIZERS:
        raise ArgumentError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
    if name == "lazy-adam" and weight_decay > 0:
        raise ArgumentError("weight_decay needs optimizer adam (AdamW decays every row at every step)")
    return name


@dataclass
class TrainConfig:
    epochs: int = 40
    batch_size: int = 1024
    learning_rate: float = 2e-3
    optimizer: str = "auto"  # OPTIMIZERS: adam, or lazy-adam for catalogues of many products
    weight_decay: float = 0.0  # > 0: AdamW (decoupled weight decay on every weight)
    patience: int = 3
    validation_share: float = 0.1
    negatives: int = 4  # sampled negatives per positive (implicit model)
    seed: int = 42
    verbose: int = 0
    max_minutes: float = 0.0  # > 0: stop after the epoch that would overrun it, best weights kept
    steps_per_execution: int = 8  # training steps per compiled call: the same updates, less per-step overhead
    epoch_rows: int = 1_000_000  # above it an epoch is this many rows, not a pass (hybrid.models.keras.training.epoch_steps)

    def __post_init__(self):
        check_optimizer(self.optimizer, self.weight_decay)
        check_steps(self.steps_per_execution)

    def to_dict(self) -> dict:
        return asdict(self)



@dataclass
class RetrievalConfig:
    """The two-tower retrieval model (``hybrid.models.keras.retrieval``) and its training."""

    dim: int = 64  # size of the user and item vectors
    text_units: int = 64  # the text vector's projection
    history: int = 50  # liked items pooled per user (a random sample above it)
    item_id_dropout: float = 0.2  # share of item ids hidden in training: text-only vectors
    user_id_dropout: float = 0.2  # share of user ids hidden: history-only users
    temperature: float = 0.2
    log_q: float = 1.5  # weight of the popularity (log-q) correction; 0 switches it off
    l2: float = 0.0  # penalty on the id embedding weights
    threshold: float = 4.0  # a rating at or above it is a like
    epochs: int = 30
    batch_size: int = 512
    learning_rate: float = 2e-3
    optimizer: str = "auto"  # OPTIMIZERS
    patience: int = 3
    validation_share: float = 0.1
    seed: int = 42
    verbose: int = 0
    max_minutes: float = 0.0  # > 0: stop after the epoch that would overrun it, best weights kept
    steps_per_execution: int = 8  # as TrainConfig's
    epoch_rows: int = 1_000_000  # as TrainConfig's

    def __post_init__(self):
        check_optimizer(self.optimizer)
        check_steps(self.steps_per_execution)



@dataclass
class TwoStageConfig:
    """Candidates, re-ranking and indexes of the two-stage recommender (``hybrid.recommend.two_stage``)."""

    candidates: int = 200  # retrieved per source (two-tower index; item-item neighbours)
    neighbours: int = 200  # item-item entries kept per item
    item_item: str = "auto"  # ease below 20,000 items, cosine above; or name one
    network: bool = True  # re-rank with the hybrid Keras network too
    weight_step: float = 0.1  # grid of blend weights, chosen on validation
    # the warm blends chosen are the grid points whose neighbourhoods (blends with at most this
    # much weight moved between parts) have the best mean validation NDCG@10, not the best points
    # alone: a point's NDCG on a few hundred validation users is noisy (0: the best point)
    weight_smoothing: float = 0.2
    validation_share: float = 0.1  # of the training likes, for the blend weights
    validation_users: int = 2000  # users ranked to choose the weights (a seeded sample)
    # where one validation share holds fewer likes than this, the warm blends are chosen on up to
    # validation_folds disjoint shares (each with models fitted on the other rows), their NDCG@10
    # pooled: on a few hundred held-out likes the best blend is mostly noise
    validation_likes: int = 2000
    validation_folds: int = 5
    content_terms: int = 64  # TF-IDF terms kept per product for the content part (0: no content part)
    # what the content part reads: "all", every text field a product has, each weighted as
    # validation chooses (hybrid.recommend.field_choice); "one", the text stage's one-field text
    # (the reference notebook's rule: feature, else description, else category)
    content_fields: str = "all"
    # rated products held out as if new (with all their ratings) to choose how cold products are
    # blended: this share of them, at most cold_validation_items
    cold_validation_share: float = 0.2
    cold_validation_items: int = 1000
    # the cold blends' weights are the validation's best point moved this share of the way to
    # equal weights, as that point comes from one validation fit ranking a few hundred products
    # (0: the best point; 1: equal weights)
    cold_weight_shrinkage: float = 0.5
    # above this many likes the models fitted to choose the blend weights are kept (their
    # held-out likes join the histories, neighbours and indexes) instead of refitted on all
    refit_max_likes: int = 1_000_000
    # a new user's words (given with liked products) weigh as much as validation allows while the
    # validation users' NDCG@10 stays within this share of their likes' alone (0: words unused)
    words_tolerance: float = 0.1
    threshold: float = 4.0  # a rating at or above it is a like
    exact_below: int = 50_000  # exact vector search below this many vectors, HNSW above
    hnsw_m: int = 32
    ef_construction: int = 100  # 200: recall@10 0.963 vs 0.951 (200k random unit vectors), twice the build time
    ef_search: int = 256
    seed: int = 42

    def __post_init__(self):
        for name in ("validation_share", "cold_validation_share"):
            if not 0 <= getattr(self, name) < 1:
                raise ArgumentError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if not 0 <= self.cold_weight_shrinkage <= 1:
            raise ArgumentError(f"cold_weight_shrinkage must be in [0, 1], got {self.cold_weight_shrinkage!r}")
        if self.content_fields not in ("all", "one"):
            raise ArgumentError(f"content_fields must be 'all' or 'one', got {self.content_fields!r}")
        if self.validation_folds < 1:
            raise ArgumentError(f"validation_folds must be 1 or more, got {self.validation_folds!r}")
        for name in ("content_terms", "cold_validation_items", "weight_smoothing", "validation_likes"):
            if getattr(self, name) < 0:
                raise ArgumentError(f"{name} must be 0 or more, got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        return asdict(self)


#: Fields a user does not set: the model's name and seed come from their own options.
_NOT_SETTABLE = {"name", "seed"}


def settable_keys(config_class) -> list[str]:
    """The fields of ``config_class`` a user may set, in declaration order."""
    return [f.name for f in fields(config_class) if f.name not in _NOT_SETTABLE]


def check_settings(values: dict | None, config_class, what: str) -> dict:
    """Return ``values`` when every key is a settable field of ``config_class``; otherwise raise
    ``ArgumentError`` naming the bad key and listing the valid ones.

    Example:
        >>> check_settings({"epochs": 3, "learning_rate": 1}, TrainConfig, "--train-param")
        {'epochs': 3, 'learning_rate': 1.0}
        >>> check_settings({"epoch": 3}, TrainConfig, "--train-param")
        Traceback (most recent call last):
        ...
        hybrid.core.errors.ArgumentError: --train-param: unknown key 'epoch'; valid keys: batch_size, epoch_rows, epochs, learning_rate, max_minutes, negatives, optimizer, patience, steps_per_execution, validation_share, verbose, weight_decay
    """
    values = dict(values or {})
    defaults = {name: getattr(config_class(), name) for name in settable_keys(config_class)}
    valid = sorted(defaults)
    for key, value in values.items():
        if key not in defaults:
            raise ArgumentError(f"{what}: unknown key {key!r}; valid keys: {', '.join(valid)}")
        values[key] = _typed(value, defaults[key], f"{what} {key}")
    try:
        config_class(**values)  # what each class checks of its values together
    except ArgumentError as exc:
        raise ArgumentError(f"{what}: {exc}") from None
    return values


def _typed(value, default, what: str):
    """``value`` in the type of the setting's default, or an ``ArgumentError`` saying why."""
    def whole(v):
        return type(v) is int or (type(v) is float and v.is_integer())

    if isinstance(default, bool):
        if type(value) is bool:
            return value
        expected = "true or false"
    elif isinstance(default, int):
        if whole(value) and value >= 0:
            return int(value)
        expected = "a whole number >= 0"
    elif isinstance(default, float):
        if type(value) in (int, float):
            return float(value)
        expected = "a number"
    elif isinstance(default, tuple):
        if isinstance(value, (list, tuple)) and all(whole(v) and v > 0 for v in value):
            return tuple(int(v) for v in value)
        expected = "a list of positive whole numbers such as [128,64]"
    elif isinstance(default, dict):
        if isinstance(value, dict):
            return value
        expected = "a JSON object"
    else:
        return value
    raise ArgumentError(f"{what}: expected {expected}, got {value!r}")


def two_stage_settings(values: dict | None, what: str = "--recommender-param") -> dict:
    """Flat settings of a two-stage recommender split by part and checked: plain keys are
    ``TwoStageConfig`` fields; ``retrieval.KEY``, ``network.KEY`` and ``train.KEY`` go to the
    retrieval model, the re-ranking network and its training.

    Example:
        >>> two_stage_settings({"candidates": 300, "retrieval.epochs": 4, "train.epochs": 2})
        {'config': {'candidates': 300}, 'retrieval': {'epochs': 4}, 'network': {}, 'train': {'epochs': 2}}
    """
    classes = {"config": TwoStageConfig, "retrieval": RetrievalConfig, "network": ModelConfig, "train": TrainConfig}
    parts: dict = {part: {} for part in classes}
    for key, value in (values or {}).items():
        part, _, name = key.rpartition(".")
        if part and part not in classes or part == "config":
            raise ArgumentError(f"{what}: unknown part {part!r} in {key!r}; use KEY, retrieval.KEY, "
                                "network.KEY or train.KEY")
        if key in ("retrieval.threshold", "network.name"):
            raise ArgumentError(f"{what}: {key!r} is fixed by the recommender (set threshold instead)"
                                if key.endswith("threshold") else f"{what}: the re-ranking network is always 'implicit'")
        parts[part or "config"][name] = value
    return {part: check_settings(parts[part], cls, what if part == "config" else f"{what} {part}.KEY")
            for part, cls in classes.items()}


def check_count(value, name: str = "n", what: str = "items") -> int:
    """``value`` as an int when it is a positive whole number (not a bool), else ``ArgumentError``.

    Example:
        >>> check_count(0, "N")
        Traceback (most recent call last):
        ...
        hybrid.core.errors.ArgumentError: N must be a positive whole number of items, got 0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ArgumentError(f"{name} must be a positive whole number of {what}, got {value!r}")
    return int(value)


#: What the evaluate stage can fit besides the Keras models: the two-stage recommender that serves
#: (``hybrid.recommend.two_stage``), ranked through its serving path.
TWO_STAGE = "two-stage"
EVALUATED_MODELS = MODEL_NAMES + (TWO_STAGE,)


def check_model_name(name: str, choices: tuple[str, ...] = MODEL_NAMES) -> str:
    if name not in choices:
        raise ArgumentError(f"unknown model {name!r}; choose one of {', '.join(choices)}")
    return name

"""The text fields' weights of the content part, chosen on products held out of the training rows
(``hybrid.recommend.field_choice``)."""

import numpy as np

from hybrid.content.terms import FieldCounts
from hybrid.core.config import TwoStageConfig
from hybrid.recommend.field_choice import choose_field_weights


def shop(seed=0, n_products=600, n_users=500):
    """Products whose category says what a person likes and whose description is noise; people
    who each like two categories."""
    rng = np.random.default_rng(seed)
    kinds = [f"kind{k}" for k in range(12)]
    noise = [f"word{k}" for k in range(300)]
    kind_of = rng.integers(0, len(kinds), n_products)
    fields = {"category": [f"{kinds[k]} gear" for k in kind_of],
              "description": [" ".join(rng.choice(noise, 12)) for _ in range(n_products)],
              "brand": ["" for _ in range(n_products)]}
    users, items, ratings = [], [], []
    for user in range(n_users):
        liked = rng.choice(len(kinds), 2, replace=False)
        mine = rng.choice(n_products, 40, replace=False)
        for product in mine:
            users.append(user)
            items.append(product)
            ratings.append(5.0 if kind_of[product] in liked else float(rng.integers(1, 3)))
    return fields, np.array(users), np.array(items), np.array(ratings, np.float32)


def test_the_field_that_says_what_people_like_weighs_more_than_noise():
    fields, users, items, ratings = shop()
    weights, figures = choose_field_weights(TwoStageConfig(seed=0), FieldCounts.count(fields), users, items, ratings)
    assert set(weights) == set(fields) and weights["brand"] == 1.0  # an empty field is left as it is
    assert weights["category"] > weights["description"], weights
    assert figures["ndcg@10"] >= figures["all_at_1"] and figures["users"] >= 10 and figures["products"] >= 10


def test_too_little_to_choose_on_keeps_every_field_at_one():
    fields, users, items, ratings = shop(n_products=40, n_users=5)
    weights, figures = choose_field_weights(TwoStageConfig(seed=0), FieldCounts.count(fields), users, items, ratings)
    assert weights == {"category": 1.0, "description": 1.0, "brand": 1.0} and figures["users"] < 10

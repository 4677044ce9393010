"""Benchmark run orders and sample keys for the round tests (tests/bench and tests/analysis)."""


def abba_order(targets: list[tuple], turns: int, calls: dict[str, int]) -> list[dict]:
    """An ABBA run order over `targets` (variant, fold, seed, runtime), with a batch-8 block
    after each turn (not part of the batch-1 rounds)."""
    order = []
    for t in range(turns):
        for v, f, s, r in targets if t % 2 == 0 else targets[::-1]:
            order.append(
                dict(turn=t, batch_size=1, variant=v, fold=f, seed=s, runtime=r, calls=calls[r])
            )
        order.append(
            dict(turn=t, batch_size=8, variant="fp32", fold=1, seed=0, runtime="x", calls=5)
        )
    return order


def keyed_warm(samples: dict) -> dict:
    """(variant, fold, seed, runtime) -> the full key of a whole model timed warm."""
    return {(*k, "whole", "warm"): v for k, v in samples.items()}

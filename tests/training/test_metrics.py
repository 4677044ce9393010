import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score

from qmoe.training.metrics import confusion_matrix, scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_match_sklearn(seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 7, (200,), generator=g)
    p = torch.where(torch.rand(200, generator=g) < 0.6, y, torch.randint(0, 7, (200,), generator=g))
    p[p == 3] = 4  # a class never predicted: its F1 is 0, as zero_division=0 gives
    s = scores(y, p, num_classes=9)  # two classes never seen at all: excluded like sklearn
    assert s.accuracy == pytest.approx(accuracy_score(y, p))
    assert s.macro_f1 == pytest.approx(f1_score(y, p, average="macro", zero_division=0))
    assert s.weighted_f1 == pytest.approx(f1_score(y, p, average="weighted", zero_division=0))


def test_confusion_matrix_counts():
    cm = confusion_matrix(torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 0]), 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_empty_predictions_are_refused():
    with pytest.raises(ValueError, match="empty"):
        scores(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long), 3)

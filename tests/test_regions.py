"""Batched parsing-region boxes and crops (CAA's eq. 4 inputs) against a per-image, per-class reference."""
import torch

from pgpis.models.regions import crop_regions, region_boxes


def _reference_boxes(parsing: torch.Tensor, num_classes: int) -> dict:
    out = {}
    for i, p in enumerate(parsing):
        for c in torch.unique(p).tolist():
            if 0 <= c < num_classes:
                ys, xs = torch.nonzero(p == c, as_tuple=True)
                out[(i, c)] = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
    return out


def test_boxes_match_a_per_class_nonzero_reference():
    g = torch.Generator().manual_seed(0)
    parsing = torch.randint(0, 6, (3, 9, 7), generator=g)
    parsing[1] = 2
    parsing[1, 3:5, 1:6] = 4  # one compact region
    parsing[2, 0, 0] = 255  # an ignore label is no class
    boxes, present = region_boxes(parsing, 6)
    ref = _reference_boxes(parsing, 6)
    assert {(i, c) for i, c in torch.nonzero(present).tolist()} == set(ref)
    for (i, c), box in ref.items():
        assert boxes[i, c].tolist() == box
    assert boxes[1, 4].tolist() == [1, 3, 6, 5]
    assert not present[~present].any() and (boxes[~present] == 0).all()


def test_allowed_drops_classes():
    parsing = torch.zeros(2, 4, 4, dtype=torch.long)
    parsing[:, 1:3, 1:3] = 1
    allowed = torch.tensor([False, True])
    _, present = region_boxes(parsing, 2, allowed)
    assert present.tolist() == [[False, True], [False, True]]


def test_crop_at_the_box_size_is_the_pixels_and_order_is_row_major():
    images = torch.arange(2 * 3 * 6 * 5, dtype=torch.float32).view(2, 3, 6, 5)
    parsing = torch.zeros(2, 6, 5, dtype=torch.long)
    parsing[0, 1:3, 2:4] = 1
    parsing[1, 2:5, 0:2] = 1
    boxes, present = region_boxes(parsing, 2, torch.tensor([False, True]))
    crops = crop_regions(images, boxes, present, (2, 2))
    torch.testing.assert_close(crops[0], images[0, :, 1:3, 2:4])
    assert crops.shape == (2, 3, 2, 2)
    torch.testing.assert_close(crop_regions(images, boxes, present, (3, 2))[1], images[1, :, 2:5, 0:2])


def test_no_region_gives_no_crops():
    crops = crop_regions(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, dtype=torch.long),
                         torch.zeros(1, 2, dtype=torch.bool), (8, 8))
    assert crops.shape == (0, 3, 8, 8)

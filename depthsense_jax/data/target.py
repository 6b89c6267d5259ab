"""The training target every dataset's stored ground truth becomes.

depth: (H, W) float32 relative inverse depth, larger = nearer (0 where not valid).
validity: (H, W) uint8 code per pixel:
  INVALID (0)  no ground truth: no loss or metric reads it;
  VALID (1)    ground truth: every loss and metric;
  SKY (2)      sky / infinitely far background: invalid for the dense losses and the
               metrics, but ordinal information (the farthest thing in the photo), which
               `config.data.keep_sky` hands to the ranking losses as depth 0.
"""

INVALID, VALID, SKY = 0, 1, 2

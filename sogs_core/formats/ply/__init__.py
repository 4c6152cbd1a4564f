"""PLY: `header` (parsed and checked), `read` (INRIA 3DGS), `compressed` (PlayCanvas compressed
PLY), `rows` (a huge PLY mapped and read by ranges), `write`."""

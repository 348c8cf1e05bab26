"""The studies around the method: each compares it with something else, or measures it, on the same footing.

- `ablation`: the subject and budget every comparison of notebooks 03-07 shares, and one row per arm;
- `classic`: the classic train → score → prune → fine-tune pipelines with labels (06);
- `granularity`: the same sparsity at weight, channel and layer granularity (06);
- `peer`: Torch-Pruning's group-norm sparse training and pruning, beside ours (07);
- `latency` and `deployment`: measured speed of the pruned networks, exported and run elsewhere (08).

They build on the package's core (config, engine, train, method, surgery, counting), which never imports them.
"""

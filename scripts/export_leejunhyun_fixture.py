"""Export a tiny test fixture from LeeJunHyun/Image_Segmentation's network.py.

That repository's U_Net, R2U_Net and R2AttU_Net hard-code widths 64..1024;
this script loads its network.py with every width divided by 32 (2..32), so
the fixture stays small, and writes for each model DIR/NAME/weights.safetensors
(its state_dict, original tensor names, BN running stats randomised) and
DIR/NAME/io.safetensors (an input and the eval-mode logits). The r2unet test
`import_leejunhyun` loads them with `--layout leejunhyun` and compares logits.

Usage: python export_leejunhyun_fixture.py PATH/TO/network.py OUT_DIR
(needs torch and safetensors; nothing of that repository is committed here).
"""
import os
import re
import sys
import types

import torch
import torch.nn as nn
from safetensors.torch import save_file


def load_scaled(path):
    src = open(path).read()
    for big, small in [("1024", "32"), ("512", "16"), ("256", "8"), ("128", "4"), ("64", "2")]:
        src = re.sub(r"(?<![\d.])%s(?![\d.])" % big, small, src)
    src = src.replace("F_int=32)", "F_int=1)")  # Att2: 64/2 -> 2/2
    module = types.ModuleType("ljh_network")
    exec(compile(src, path, "exec"), module.__dict__)
    return module


def main():
    net_path, out = sys.argv[1], sys.argv[2]
    net = load_scaled(net_path)
    for name, ctor in [("U_Net", lambda: net.U_Net(img_ch=3, output_ch=1)),
                       ("R2U_Net", lambda: net.R2U_Net(img_ch=3, output_ch=1, t=2)),
                       ("R2AttU_Net", lambda: net.R2AttU_Net(img_ch=3, output_ch=1, t=2))]:
        torch.manual_seed(0)
        model = ctor()
        g = torch.Generator().manual_seed(1)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
        model.eval()
        x = torch.randn(1, 3, 32, 32, generator=g)
        with torch.no_grad():
            y = model(x)
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(state, os.path.join(d, "weights.safetensors"))
        save_file({"input": x, "eval_logits": y}, os.path.join(d, "io.safetensors"))
        print(name, sum(p.numel() for p in model.parameters()), "parameters", file=sys.stderr)


if __name__ == "__main__":
    main()

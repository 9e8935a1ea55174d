"""The worked examples of ../shared/REFERENCE.md as small models (shared by tests and the demo checks)."""
import torch
import torch.nn as nn
import torch.nn.functional as F


def example1_mlp(device="cpu"):
    return nn.Sequential(
        nn.Linear(10, 20, bias=False, device=device), nn.ReLU(),
        nn.Linear(20, 15, bias=False, device=device), nn.ReLU(),
        nn.Linear(15, 1, bias=False, device=device),
    )


class Example2CNN(nn.Module):
    def __init__(self, device="cpu"):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, 1, 1, device=device)
        self.conv2 = nn.Conv2d(16, 32, 3, 1, 1, device=device)
        self.fc = nn.Linear(32 * 28 * 28, 10, device=device)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        return self.fc(torch.flatten(x, 1))


class Example3Attention(nn.Module):
    """Self-attention, embed 256, 8 heads: q/k/v without bias, output projection with bias."""

    def __init__(self, use_sdpa, embed=256, heads=8, device="cpu"):
        super().__init__()
        self.heads, self.use_sdpa = heads, use_sdpa
        self.q = nn.Linear(embed, embed, bias=False, device=device)
        self.k = nn.Linear(embed, embed, bias=False, device=device)
        self.v = nn.Linear(embed, embed, bias=False, device=device)
        self.out = nn.Linear(embed, embed, device=device)

    def forward(self, x):
        b, s, e = x.shape
        split = lambda t: t.view(b, s, self.heads, e // self.heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        if self.use_sdpa:
            y = F.scaled_dot_product_attention(q, k, v)
        else:
            scores = torch.matmul(q, k.transpose(-2, -1)) / (e // self.heads) ** 0.5
            y = torch.matmul(torch.softmax(scores, dim=-1), v)
        return self.out(y.transpose(1, 2).reshape(b, s, e))


def example4_mlp(device="cpu"):
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 512, device=device), nn.ReLU(),
        nn.Linear(512, 512, device=device), nn.ReLU(), nn.Linear(512, 10, device=device),
    )


class BasicBlock(nn.Module):
    """torchvision's ResNet basic block: two 3x3 convs with BatchNorm, a 1x1 conv shortcut when
    the shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """torchvision's resnet18, module for module (same names, shapes and forward)."""

    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, cout in enumerate([64, 128, 256, 512]):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))

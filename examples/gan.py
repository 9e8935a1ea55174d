"""Two models in one script: a tiny GAN, two training steps, each model with its own Adam.

    flopdispatch run --depth 1 gan.py

`run` names no model: each top-level module that runs becomes a root with its own tree.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))

    def forward(self, z):
        return self.net(z)


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))

    def forward(self, x):
        return self.net(x)


def main():
    torch.manual_seed(0)
    G, D = Generator(), Discriminator()
    opt_g, opt_d = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    real = torch.randn(5, 4)
    for step in range(2):
        fake = G(torch.randn(5, 8))
        loss_d = F.softplus(-D(real)).mean() + F.softplus(D(fake.detach())).mean()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = F.softplus(-D(fake)).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()


if __name__ == "__main__":  # the models import without training (tests/api/test_roots.py)
    main()

"""Corpus workload: train a small ResNet-style net on synthetic 32x32 images.

Usage: torch_train.py SECONDS [BATCH=32] [WIDTH=32]
"""
import sys, time
import torch
import torch.nn as nn

torch.set_num_threads(1)
torch.manual_seed(0)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.a = nn.Conv2d(c, c, 3, padding=1)
        self.b = nn.Conv2d(c, c, 3, padding=1)
        self.n = nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(x + self.n(self.b(torch.relu(self.a(x)))))


BATCH = int(sys.argv[2]) if len(sys.argv) > 2 else 32
W = int(sys.argv[3]) if len(sys.argv) > 3 else 32
net = nn.Sequential(nn.Conv2d(3, W, 3, padding=1), Block(W), nn.MaxPool2d(2), Block(W),
                    nn.MaxPool2d(2), Block(W), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                    nn.Linear(W, 10))
opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
end = time.time() + float(sys.argv[1])
steps = 0
while time.time() < end and steps < 100000:
    x = torch.randn(BATCH, 3, 32, 32)
    y = torch.randint(0, 10, (BATCH,))
    loss = nn.functional.cross_entropy(net(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    steps += 1

"""The PyTorch peer of `npm run bench:train`: one float32 CPU training step of a GPT-Neo model of the same
shape (forward, causal-LM loss, backward, clip_grad_norm_(1.0), AdamW), written like Hugging Face's
GPTNeoForCausalLM (no attention scaling, local layers see `window_size` keys, gelu_new, tied head).
Usage: python3 torch-train-step.py <hidden> <layers> <heads> <block> <batch> <threads> <steps>
Prints {"tokensPerSecond", "secondsPerStep", "peakRssBytes", "gemmFlops"} as JSON; gemmFlops is the rate of a
2048^3 float32 matmul in this torch (fastest of 10), which says whether its BLAS is a real one (Debian's
python3-torch runs on whatever libblas.so.3 update-alternatives selects: reference BLAS, or OpenBLAS once
libopenblas0-pthread is installed)."""
import json, math, resource, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

C, L, H, T, B, threads, steps = map(int, sys.argv[1:8])
V, P, WINDOW = 50257, 2048, 256
torch.set_num_threads(threads)
torch.manual_seed(0)


class Block(nn.Module):
    def __init__(self, local):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.q, self.k, self.v = (nn.Linear(C, C, bias=False) for _ in range(3))
        self.out = nn.Linear(C, C)
        self.fc, self.proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        i = torch.arange(T)
        visible = (i[None, :] <= i[:, None]) & ((i[:, None] - i[None, :] < WINDOW) if local else True)
        self.register_buffer('visible', visible)

    def forward(self, h):
        x = self.ln_1(h)
        split = lambda t: t.view(B, T, H, C // H).transpose(1, 2)
        scores = split(self.q(x)) @ split(self.k(x)).transpose(-1, -2)
        scores = torch.where(self.visible, scores, torch.finfo(scores.dtype).min)
        context = (scores.softmax(-1) @ split(self.v(x))).transpose(1, 2).reshape(B, T, C)
        h = h + self.out(context)
        return h + self.proj(F.gelu(self.fc(self.ln_2(h)), approximate='tanh'))


class GPTNeo(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(P, C)
        self.blocks = nn.ModuleList(Block(local=i % 2 == 1) for i in range(L))
        self.ln_f = nn.LayerNorm(C)

    def forward(self, ids):
        h = self.wte(ids) + self.wpe(torch.arange(T))[None]
        for block in self.blocks:
            h = block(h)
        logits = self.ln_f(h) @ self.wte.weight.T
        return F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))


model = GPTNeo()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
ids = torch.randint(0, 50000, (B, T))


def step():
    optimizer.zero_grad()
    model(ids).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()


def gemm_flops():
    n = 2048
    a, b = torch.rand(n, n), torch.rand(n, n)
    best = math.inf
    for _ in range(10):
        begun = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - begun)
    return 2 * n ** 3 / best


gemm = gemm_flops()
step()
started = time.perf_counter()
for _ in range(steps):
    step()
seconds = (time.perf_counter() - started) / steps
print(json.dumps({'tokensPerSecond': B * T / seconds, 'secondsPerStep': seconds,
                  'peakRssBytes': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, 'gemmFlops': gemm}))

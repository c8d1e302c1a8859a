"""Hessian-vector products and the top Hessian eigenvalue: batchlab vs the plain PyTorch way.

Workload: the lecture's MLP (784-512-512-10, ~670k parameters), trained for one epoch of
mini-batch SGD with momentum 0.9 (B = 64, lr 0.01) so the point is not a random initialization,
and the mean cross-entropy over the 5,000 real digits of ``mnist-5k`` (its 4,000 training and
1,000 test images; standardized like batchlab's splits), in float32, in chunks of 1,000 examples.

Per Hessian-vector product, timed in one process on the same vectors and chunks:

(a) ``plain``: ``torch.autograd.functional.hvp`` of each chunk's loss (through
    ``torch.func.functional_call`` on the flat parameters), weighted by chunk size / N and summed;
(b) ``batchlab``: :class:`batchlab.geometry.HessianOperator` rebuilding the graph per product
    (double backward, ``cache_graph=False``);
(c) ``batchlab cached``: the same operator keeping the first backward graph
    (``cache_graph="auto"``; its one-off build time is reported separately).

Median of ``--repeats`` products after one warm-up, with min and max. Then the time to the top
eigenvalue at tol 1e-3 from the same start vector: ``batchlab``'s
:func:`batchlab.geometry.top_eigenvalues` end to end (Lanczos with its residual rule, graph build
included) vs ARPACK ``eigsh`` on a ``LinearOperator`` around (a). The goal on a 2-core CPU is
≤ 30 s for batchlab.

Peer: PyHessian 0.1 (Yao et al., 2020; ``pip install batchlab[bench]``, skipped when it is not
installed). On the first N examples (``--peer-examples``, default 1,000 and 4,000), the top
``--top-n`` eigenvalues (default 1 and 3) at PyHessian's default tolerance, 1e-3, are timed end to
end in one process on the same weights: PyHessian (``hessian(...).eigenvalues``: power iteration
stopped when λ changes by less than tol between two products; its first backward included),
batchlab (:func:`batchlab.geometry.top_eigenvalues`, ``method="auto"``: Lanczos stopped when every
residual ‖Hv − λv‖ ≤ tol·|λ|; the cached graph included) and, for top-1, batchlab's power
iteration (``method="power"``, PyHessian's rule with a residual guard). Each is compared with a
tight reference: batchlab's Lanczos at tol 1e-9 on a float64 copy of the model and data (so
float32 rounding does not limit the reference). Printed for each: seconds, Hessian-vector
products (PyHessian's counted by wrapping its ``hessian_vector_product``), the largest relative
error against the reference and, for batchlab's Lanczos, its residual bound. Each method runs
``--peer-repeats`` times in alternating order and keeps its fastest run.

Writes ``benchmarks/results/hvp-<device-slug>.json`` with the device, environment, machine load
(1-minute load average before and after: other processes slow a CPU measurement) and every
measurement, and prints a short table.

Usage::

    PYTHONPATH=src python benchmarks/hvp.py                  # CPU or the first GPU
    PYTHONPATH=src python benchmarks/hvp.py --device cpu --repeats 7 --threads 1
"""

from __future__ import annotations

import argparse
import copy
import importlib
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh
from torch.func import functional_call
from torch.nn import functional as F

from batchlab import data as datasets
from batchlab.runtime.device import device_name, resolve_device, synchronize
from batchlab.geometry import FlatLoss, HessianOperator, top_eigenvalues
from batchlab.models.registry import build_model

from common import load_average, result_header, write_result

DATASET = "mnist-5k"
CHUNK_SIZE = 1000
TOL = 1e-3
SEED = 0
# PyHessian 0.1's default tolerance of ``hessian.eigenvalues`` and the reference's tolerance.
PEER_TOL = 1e-3
REFERENCE_TOL = 1e-9
PEER_EXAMPLES = (1000, 4000)
# Products the float64 reference may use (it asks for residual ≤ 1e-9·|λ|).
REFERENCE_MAX_PRODUCTS = 400
PEER_TOP_N = (1, 3)


def load_examples(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train x, train y, all 5,000 x, all 5,000 y) of mnist-5k on ``device``."""
    splits = datasets.prepare_splits(DATASET, val_fraction=0.0, device=device)
    x = torch.cat([splits.train.x, splits.test.x])
    y = torch.cat([splits.train.y, splits.test.y])
    return splits.train.x, splits.train.y, x, y


def trained_mlp(train_x: torch.Tensor, train_y: torch.Tensor, device: torch.device) -> torch.nn.Module:
    """The lecture MLP after one epoch of SGD (B = 64, lr 0.01, momentum 0.9), seeded."""
    torch.manual_seed(SEED)
    model = build_model("mlp", (1, 28, 28), 10).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(SEED)).to(device)
    for start in range(0, len(order), 64):
        batch = order[start : start + 64]
        optimizer.zero_grad()
        F.cross_entropy(model(train_x[batch]), train_y[batch]).backward()
        optimizer.step()
    return model.eval()


def plain_hvp(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """H v the way one writes it with ``torch.autograd.functional.hvp``, chunk by chunk."""
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    n = len(x)

    def product(v: torch.Tensor) -> torch.Tensor:
        total = torch.zeros_like(theta)
        for start in range(0, n, CHUNK_SIZE):
            xb, yb = x[start : start + CHUNK_SIZE], y[start : start + CHUNK_SIZE]

            def loss(flat: torch.Tensor) -> torch.Tensor:
                params = {name: c.view(s) for name, c, s in zip(names, flat.split(sizes), shapes)}
                return F.cross_entropy(functional_call(model, params, (xb,)), yb)

            _, hv = torch.autograd.functional.hvp(loss, theta, v)
            total += hv * (len(yb) / n)
        return total

    return product


def time_products(product: Callable[[torch.Tensor], torch.Tensor], vectors: list[torch.Tensor], device: torch.device):
    """Per-product seconds (first vector is a warm-up, not timed) and the last result."""
    product(vectors[0])
    synchronize(device)
    seconds, result = [], None
    for v in vectors[1:]:
        started = time.perf_counter()
        result = product(v)
        synchronize(device)
        seconds.append(time.perf_counter() - started)
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds), "repeats": len(seconds)}, result


def plain_top_eigenvalue(product: Callable[[torch.Tensor], torch.Tensor], dim: int, dtype, device) -> dict:
    """ARPACK ``eigsh`` (tol 1e-3) on a LinearOperator around the plain product; same start as batchlab."""
    calls = 0

    def matvec(array: np.ndarray) -> np.ndarray:
        nonlocal calls
        calls += 1
        v = torch.from_numpy(np.asarray(array, dtype=np.float64).reshape(-1)).to(device=device, dtype=dtype)
        return product(v).to("cpu", torch.float64).numpy()

    start = torch.randn(dim, generator=torch.Generator().manual_seed(SEED), dtype=torch.float64).numpy()
    started = time.perf_counter()
    values = eigsh(LinearOperator((dim, dim), matvec=matvec, dtype=np.float64), k=1, which="LA", tol=TOL, v0=start)[0]
    synchronize(device)
    return {"seconds": time.perf_counter() - started, "value": float(values[0]), "hessian_vector_products": calls}


def timed(call: Callable[[], object], device: torch.device) -> tuple[float, object]:
    synchronize(device)
    started = time.perf_counter()
    result = call()
    synchronize(device)
    return time.perf_counter() - started, result


def pyhessian_top(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, top_n: int, device: torch.device) -> dict:
    """PyHessian 0.1's top ``top_n`` eigenvalues at its default tolerance, timed end to end."""
    from pyhessian import hessian

    # The module, not the class the package exports under the same name.
    peer_module = importlib.import_module("pyhessian.hessian")

    torch.manual_seed(SEED)  # PyHessian draws its start vectors from the global generator
    products = 0
    original_product = peer_module.hessian_vector_product

    def counted_product(*args, **kwargs):
        nonlocal products
        products += 1
        return original_product(*args, **kwargs)

    def run() -> list[float]:
        with warnings.catch_warnings():  # PyHessian's own backward(create_graph=True), not ours
            warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
            peer = hessian(model, torch.nn.CrossEntropyLoss(), data=(x, y), cuda=device.type == "cuda")
        values, _ = peer.eigenvalues(maxIter=100, tol=PEER_TOL, top_n=top_n)
        return [float(v) for v in values]

    peer_module.hessian_vector_product = counted_product  # the module-level name its eigenvalues() calls
    try:
        seconds, values = timed(run, device)
    finally:
        peer_module.hessian_vector_product = original_product
    model.zero_grad(set_to_none=True)  # PyHessian leaves create_graph gradients in .grad
    return {"seconds": seconds, "values": values, "hessian_vector_products": products}


def batchlab_top(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, top_n: int, method: str,
                 tol: float, device: torch.device, max_iter: int = 100) -> dict:
    seconds, result = timed(
        lambda: top_eigenvalues(model, x, y, k=top_n, tol=tol, max_iter=max_iter, seed=SEED, chunk_size=CHUNK_SIZE,
                                method=method),
        device,
    )
    return {"seconds": seconds, "values": list(result.values), "method": result.method,
            "hessian_vector_products": result.num_hvps, "residuals": list(result.residuals)}


def reference_top(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, top_n: int, device: torch.device) -> dict:
    """Lanczos at tol 1e-9 on a float64 copy of the model and data: the eigenvalues each method is
    judged against (residual ≤ 1e-9·|λ| bounds their error far below the 1e-3 compared)."""
    double = copy.deepcopy(model).double()
    return batchlab_top(double, x.double(), y, top_n, "lanczos", REFERENCE_TOL, device, REFERENCE_MAX_PRODUCTS)


def relative_errors(values: list[float], reference: list[float]) -> list[float]:
    return [abs(v - r) / abs(r) for v, r in zip(sorted(values, reverse=True), reference)]


def compare_with_pyhessian(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device,
                           examples: list[int], top_ns: list[int], repeats: int) -> list[dict]:
    """Each (N, top-n): PyHessian and batchlab (auto = Lanczos; and power iteration for top-1) at
    tol 1e-3 against the float64 reference. Each is run ``repeats`` times in alternating order and
    keeps its fastest run (load from other processes only adds time); all times are kept."""
    rows = []
    for n in examples:
        xs, ys = x[:n], y[:n]
        reference = reference_top(model, xs, ys, max(top_ns), device)
        for top_n in top_ns:
            exact = reference["values"][:top_n]
            row = {"examples": n, "top_n": top_n, "tol": PEER_TOL, "reference": {**reference, "values": exact}}
            runners = {"pyhessian": lambda: pyhessian_top(model, xs, ys, top_n, device)}
            for method in ("auto", "power") if top_n == 1 else ("auto",):
                runners[f"batchlab_{method}"] = (
                    lambda method=method: batchlab_top(model, xs, ys, top_n, method, PEER_TOL, device))
            samples: dict[str, list[dict]] = {name: [] for name in runners}
            for repeat in range(repeats):
                for name in list(runners) if repeat % 2 == 0 else list(reversed(runners)):
                    samples[name].append(runners[name]())
            for name, runs in samples.items():
                fastest = min(runs, key=lambda run: run["seconds"])
                errors = relative_errors(fastest["values"], exact)
                row[name] = {**fastest, "all_seconds": [run["seconds"] for run in runs],
                             "max_relative_error": max(errors)}
            row["pyhessian_over_batchlab_auto"] = row["pyhessian"]["seconds"] / row["batchlab_auto"]["seconds"]
            rows.append(row)
            print_peer_row(row)
    return rows


def print_peer_row(row: dict) -> None:
    print(f"N = {row['examples']:,}, top-{row['top_n']} at tol {row['tol']:g} (reference: Lanczos tol {REFERENCE_TOL:g}, "
          f"float64, λ = {', '.join(f'{v:.8g}' for v in row['reference']['values'])})", flush=True)
    for name, label in (("pyhessian", "PyHessian 0.1 (power)"), ("batchlab_auto", "batchlab auto"),
                        ("batchlab_power", "batchlab power")):
        if name not in row:
            continue
        entry = row[name]
        method = f" [{entry['method']}]" if "method" in entry else ""
        bound = (f", residual/|λ| ≤ {max(r / abs(v) for r, v in zip(entry['residuals'], entry['values'])):.1e}"
                 if entry.get("method") == "lanczos" else "")
        print(f"  {label:<24}{entry['seconds']:>8.2f} s {entry['hessian_vector_products']:>4} products   "
              f"max relative error {entry['max_relative_error']:.1e}{bound}{method}")
    print(f"  PyHessian / batchlab auto: {row['pyhessian_over_batchlab_auto']:.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--repeats", type=int, default=5, help="timed products per method (default: 5)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's choice; 1 steadies CPU timings on a busy machine)")
    parser.add_argument("--skip-plain-eigen", action="store_true", help="do not run Lanczos on the plain product")
    parser.add_argument("--examples", type=int, default=5000,
                        help="N of the product timings, the first N of the 5,000 (default: 5000)")
    parser.add_argument("--peer-examples", type=int, nargs="+", default=list(PEER_EXAMPLES),
                        help="N of the PyHessian comparison (default: 1000 4000; at most 5000)")
    parser.add_argument("--top-n", type=int, nargs="+", default=list(PEER_TOP_N),
                        help="numbers of top eigenvalues compared with PyHessian (default: 1 3)")
    parser.add_argument("--peer-repeats", type=int, default=2,
                        help="runs of each method in the PyHessian comparison, fastest kept (default: 2)")
    parser.add_argument("--skip-pyhessian", action="store_true", help="do not compare with PyHessian")
    parser.add_argument("--out", type=Path, help="result file (default: benchmarks/results/hvp-<device>.json)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.peer_repeats < 1:
        parser.error("--repeats and --peer-repeats must be ≥ 1")
    if any(not 1 <= n <= 5000 for n in [args.examples, *args.peer_examples]) or any(k < 1 for k in args.top_n):
        parser.error("--examples and --peer-examples must be in 1 … 5000, --top-n ≥ 1")
    peer_available = not args.skip_pyhessian and _pyhessian_installed()

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    load_before = load_average()
    train_x, train_y, all_x, all_y = load_examples(device)
    model = trained_mlp(train_x, train_y, device)
    x, y = all_x[: args.examples], all_y[: args.examples]
    loss = FlatLoss(model, x, y, chunk_size=CHUNK_SIZE)
    print(f"device: {device_name(device)}; mlp 784-512-512-10 ({loss.dim} parameters), {len(x)} examples of "
          f"{DATASET}, chunks of {CHUNK_SIZE}, float32", flush=True)

    generator = torch.Generator().manual_seed(SEED + 1)
    vectors = [torch.randn(loss.dim, generator=generator).to(device) for _ in range(args.repeats + 1)]
    plain_timing, plain_result = time_products(plain_hvp(model, x, y), vectors, device)
    rebuilt_timing, rebuilt_result = time_products(HessianOperator(loss, cache_graph=False).matvec, vectors, device)
    started = time.perf_counter()
    cached = HessianOperator(loss, cache_graph="auto")
    synchronize(device)
    build_s = time.perf_counter() - started
    cached_timing, cached_result = time_products(cached.matvec, vectors, device)
    scale = float(plain_result.norm())
    agreement = {
        "batchlab_vs_plain": float((rebuilt_result - plain_result).norm()) / scale,
        "batchlab_cached_vs_plain": float((cached_result - plain_result).norm()) / scale,
    }

    started = time.perf_counter()
    eigen = top_eigenvalues(model, x, y, k=1, tol=TOL, seed=SEED, chunk_size=CHUNK_SIZE, method="lanczos")
    synchronize(device)
    batchlab_eigen = {"seconds": time.perf_counter() - started, "value": eigen.values[0],
                      "hessian_vector_products": eigen.num_hvps, "method": eigen.method}
    plain_eigen = None
    if not args.skip_plain_eigen:
        plain_eigen = plain_top_eigenvalue(plain_hvp(model, x, y), loss.dim, loss.dtype, device)

    peer_rows = None
    if peer_available:
        peer_rows = compare_with_pyhessian(model, all_x, all_y, device, args.peer_examples, args.top_n,
                                           args.peer_repeats)
    elif not args.skip_pyhessian:
        print("PyHessian is not installed (pip install 'batchlab[bench]'): comparison skipped", flush=True)

    per_hvp = {"plain": plain_timing, "batchlab": rebuilt_timing, "batchlab_cached": {**cached_timing, "graph_build_s": build_s,
               "graph_cached": cached.graph_cached}}
    ratios = {
        "plain_over_batchlab": plain_timing["median_s"] / rebuilt_timing["median_s"],
        "plain_over_batchlab_cached": plain_timing["median_s"] / cached_timing["median_s"],
    }
    if plain_eigen is not None:
        ratios["top_eigenvalue_plain_over_batchlab"] = plain_eigen["seconds"] / batchlab_eigen["seconds"]

    print(f"{'time per Hessian-vector product':<34}{'median':>9}{'min':>9}{'max':>9}{'plain/this':>12}")
    for label, timing in (("(a) plain autograd.functional.hvp", plain_timing), ("(b) batchlab, graph rebuilt", rebuilt_timing),
                          ("(c) batchlab, graph cached", cached_timing)):
        print(f"{label:<34}{timing['median_s']:>8.3f}s{timing['min_s']:>8.3f}s{timing['max_s']:>8.3f}s"
              f"{plain_timing['median_s'] / timing['median_s']:>11.2f}x")
    print(f"(c) graph build, once: {build_s:.3f} s; cached: {cached.graph_cached}; relative difference to (a): "
          f"(b) {agreement['batchlab_vs_plain']:.1e}, (c) {agreement['batchlab_cached_vs_plain']:.1e}")
    print(f"top eigenvalue, batchlab: {batchlab_eigen['value']:.5g} in {batchlab_eigen['seconds']:.2f} s "
          f"({batchlab_eigen['hessian_vector_products']} products; goal ≤ 30 s on 2 cores)")
    if plain_eigen is not None:
        print(f"top eigenvalue, plain:    {plain_eigen['value']:.5g} in {plain_eigen['seconds']:.2f} s "
              f"({plain_eigen['hessian_vector_products']} products) → {ratios['top_eigenvalue_plain_over_batchlab']:.2f}x")

    result = {
        **result_header("hvp", device, load_before),
        "dataset": f"{DATASET}: the first {len(x)} of its 5,000 examples (train + test images)",
        "model": "mlp 784-512-512-10, one epoch of SGD (B=64, lr=0.01, momentum=0.9)",
        "parameters": loss.dim,
        "chunk_size": CHUNK_SIZE,
        "dtype": "float32",
        "per_hvp": per_hvp,
        "agreement": agreement,
        "top_eigenvalue": {"tol": TOL, "batchlab": batchlab_eigen, "plain": plain_eigen},
        "ratios": ratios,
        "pyhessian_comparison": peer_rows,
    }
    out = write_result(result, args.out, "hvp", device)
    print(f"wrote {out}", flush=True)
    return 0


def _pyhessian_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("pyhessian") is not None


if __name__ == "__main__":
    sys.exit(main())

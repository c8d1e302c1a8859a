/* batchlab playground: the lecture's ball, rolled by four optimizers side by side.
 *
 * Same definitions as Python's batchlab.toy, so the same settings give the same trajectory:
 *   surfaces      batchlab/toy/surfaces.py (parameters embedded by batchlab/playground/page.py)
 *   examples      batchlab/toy/examples.py: example i has loss L(θ) + z_i·θ, Σ z_i = 0
 *   batch order   batchlab/toy/prng.py: mulberry32, Fisher-Yates per epoch, ⌊N/B⌋ batches
 *   update        batchlab/toy/trajectory.py: m ← λm − ηg, θ ← θ + m, m₀ = 0, same stopping rule
 * Only the Nudge button (a displacement that is not an update) has no Python counterpart.
 */
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("batchlab-data").textContent);
  const EIGENVALUE_TOLERANCE = 1e-9;  // as batchlab.toy.surfaces: |eigenvalue| below this counts as zero
  const REST_FRACTION = 1e-4;         // "at rest" and "critical" relative to the surface's scale (restScale)
  const START_GRID = 0.05;            // a click places the start on this grid, so y = 0 can be hit exactly
  const NUDGE = 0.02;                 // length of a nudge
  const ARROW_MIN_PX = 44;            // shorter arrows are magnified by a round factor k
  const WIDE_LAYOUT = "(min-width: 900px)";  // as playground.css: settings on the left, panels in two rows
  const PAGE_BOTTOM_PX = 10;          // wide layout: room left under the second row of panels
  const NARROW_TITLE_PX = 56;         // narrow layout: a panel's title above its canvas, under the sliders

  // ------------------------------------------------------------------ mulberry32 and batches

  function Mulberry32(seed) { this.state = seed >>> 0; }
  Mulberry32.prototype.nextUint32 = function () {
    this.state = (this.state + 0x6D2B79F5) >>> 0;
    const a = this.state;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t = (t + Math.imul(t ^ (t >>> 7), t | 61)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  };
  Mulberry32.prototype.below = function (n) { return this.nextUint32() % n; };
  Mulberry32.prototype.permutation = function (n) {
    const order = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = this.below(i + 1);
      const kept = order[i]; order[i] = order[j]; order[j] = kept;
    }
    return order;
  };

  function BatchStream(size, batchSize, seed) {
    this.size = size; this.batchSize = batchSize; this.rng = new Mulberry32(seed);
    this.epoch = []; this.index = 0;
  }
  BatchStream.prototype.next = function () {
    if (this.index >= this.epoch.length) {
      const order = this.rng.permutation(this.size);
      this.epoch = [];
      for (let s = 0; s + this.batchSize <= this.size; s += this.batchSize) {
        this.epoch.push(order.slice(s, s + this.batchSize));
      }
      this.index = 0;
    }
    return this.epoch[this.index++];
  };

  // ------------------------------------------------------------------ surfaces

  const sq = (v) => v * v;
  const expit = (u) => 1 / (1 + Math.exp(-u));
  const softplus = (u) => (u > 0 ? u + Math.log1p(Math.exp(-u)) : Math.log1p(Math.exp(u)));
  const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

  const FORMULAS = {
    ball(p) {
      const w = p.knee_width, s1 = sq(p.shallow_width), s2 = sq(p.deep_width);
      const dips = (x) => [p.shallow_depth * Math.exp(-sq(x - p.shallow_center) / (2 * s1)),
                           p.deep_depth * Math.exp(-sq(x - p.deep_center) / (2 * s2))];
      return {
        value([x]) {
          const [shallow, deep] = dips(x);
          return p.slope_left * w * softplus((p.knee - x) / w) + p.slope_right * w * softplus((x - p.wall) / w)
            - shallow - deep;
        },
        grad([x]) {
          const [shallow, deep] = dips(x);
          return [-p.slope_left * expit((p.knee - x) / w) + p.slope_right * expit((x - p.wall) / w)
            + shallow * (x - p.shallow_center) / s1 + deep * (x - p.deep_center) / s2];
        },
        hessian([x]) {
          const left = expit((p.knee - x) / w), right = expit((x - p.wall) / w);
          const [shallow, deep] = dips(x);
          return [[p.slope_left * left * (1 - left) / w + p.slope_right * right * (1 - right) / w
            + shallow * (1 / s1 - sq(x - p.shallow_center) / sq(s1))
            + deep * (1 / s2 - sq(x - p.deep_center) / sq(s2))]];
        },
      };
    },
    saddle(p) {
      return {
        value([x, y]) { return p.a * sq(x) - p.b * sq(y) + 0.5 * p.b * Math.pow(y, 4); },
        grad([x, y]) { return [2 * p.a * x, -2 * p.b * y + 2 * p.b * Math.pow(y, 3)]; },
        hessian([, y]) { return [[2 * p.a, 0], [0, -2 * p.b + 6 * p.b * sq(y)]]; },
      };
    },
    valley(p) {
      // A = R diag(1, κ) Rᵀ, then symmetrized, in the order numpy computes it.
      const phi = p.angle_degrees * (Math.PI / 180), c = Math.cos(phi), s = Math.sin(phi), k = p.condition;
      const rd = [[c, -s * k], [s, c * k]];
      const m01 = rd[0][0] * s + rd[0][1] * c, m10 = rd[1][0] * c + rd[1][1] * -s;
      const A = [[rd[0][0] * c + rd[0][1] * -s, 0.5 * (m01 + m10)],
                 [0.5 * (m10 + m01), rd[1][0] * s + rd[1][1] * c]];
      const [cx, cy] = p.center;
      const grad = ([x, y]) => {
        const dx = x - cx, dy = y - cy;
        return [A[0][0] * dx + A[0][1] * dy, A[1][0] * dx + A[1][1] * dy];
      };
      return {
        value([x, y]) { const g = grad([x, y]); return 0.5 * ((x - cx) * g[0] + (y - cy) * g[1]); },
        grad,
        hessian() { return [A[0].slice(), A[1].slice()]; },
      };
    },
    "two-minima"(p) {
      const h = p.height, t = p.tilt, b = p.stiffness, c = p.curvature;
      return {
        value([x, y]) { return 0.25 * h * sq(sq(x) - 1) + t * x + 0.5 * b * sq(y - c * sq(x)); },
        grad([x, y]) {
          const off = y - c * sq(x);
          return [h * x * (sq(x) - 1) + t - 2 * b * c * x * off, b * off];
        },
        hessian([x, y]) {
          const off = y - c * sq(x);
          const xy = -2 * b * c * x;
          return [[h * (3 * sq(x) - 1) - 2 * b * c * off + 4 * b * sq(c) * sq(x), xy], [xy, b]];
        },
      };
    },
  };

  function surfaceEntry(name) {
    const entry = DATA.surfaces.find((s) => s.name === name);
    if (!entry) throw new Error(`unknown surface ${name}; known: ${DATA.surfaces.map((s) => s.name).join(", ")}`);
    return entry;
  }

  function makeSurface(name, condition) {
    const entry = surfaceEntry(name);
    const params = Object.assign({}, entry.params);
    if (name === "valley" && condition != null) params.condition = condition;
    const tilts = entry.examples.tilts;
    const surface = Object.assign({
      name, dim: entry.dim, domain: entry.domain, start: entry.start, lr: entry.lr, label: entry.label,
      formula: entry.formula, critical: entry.critical_points, tilts, params,
      batchTilt(batch) {
        const sum = new Array(entry.dim).fill(0);
        for (const i of batch) for (let d = 0; d < entry.dim; d++) sum[d] += tilts[i][d];
        return sum.map((v) => v / batch.length);
      },
    }, FORMULAS[name](params));
    return surface;
  }

  // ------------------------------------------------------------------ the update rule

  class Run {
    /* options: start, lr, momentum, batchSize (null: the true gradient), seed, steps, stopTol, bound */
    constructor(surface, options) {
      this.surface = surface; this.o = options;
      if (options.batchSize != null
          && !(Number.isInteger(options.batchSize) && options.batchSize >= 1 && options.batchSize <= surface.tilts.length)) {
        throw new Error(`batch size must be an integer in [1, ${surface.tilts.length}]`);
      }
      this.theta = options.start.slice(0, surface.dim);
      this.m = new Array(surface.dim).fill(0);
      this.t = 0;
      this.points = [this.theta.slice()];
      this.batches = [];
      this.trueGrad = surface.grad(this.theta);
      this.converged = norm(this.trueGrad) < options.stopTol;  // started at rest on a critical point
      this.diverged = false;
      this.stream = options.batchSize == null ? null : new BatchStream(surface.tilts.length, options.batchSize, options.seed);
      this.nextBatch = null;
      this.drawBatch();
    }
    get done() { return this.converged || this.diverged || this.t >= this.o.steps; }
    drawBatch() {  // the batch of the next update, drawn in the same order Python draws it
      if (this.stream && !this.done && this.nextBatch == null) this.nextBatch = this.stream.next();
      this.nextGrad = this.nextBatch == null ? this.trueGrad.slice()
        : this.surface.batchTilt(this.nextBatch).map((z, d) => this.trueGrad[d] + z);
    }
    step() {
      if (this.done) return false;
      const g = this.nextGrad;
      if (this.nextBatch != null) this.batches.push(this.nextBatch);
      this.nextBatch = null;
      this.m = this.m.map((v, d) => this.o.momentum * v - this.o.lr * g[d]);
      this.theta = this.theta.map((v, d) => v + this.m[d]);
      this.t += 1;
      this.points.push(this.theta.slice());
      if (!this.theta.every(Number.isFinite) || norm(this.theta) > this.o.bound) {
        this.diverged = true;
      } else {
        this.trueGrad = this.surface.grad(this.theta);
        if (norm(this.trueGrad) < this.o.stopTol && norm(this.m) < this.o.stopTol) this.converged = true;
      }
      this.drawBatch();
      return true;
    }
    nudge(delta) {  // not an update: the ball is moved, its movement m kept
      if (this.diverged) return;
      this.theta = this.theta.map((v, d) => v + delta[d]);
      this.points.push(this.theta.slice());
      this.trueGrad = this.surface.grad(this.theta);
      this.converged = false;
      this.drawBatch();
    }
  }

  function trajectory(settings) {
    const s = settings || {};
    const surface = makeSurface(s.surface || "ball", s.condition);
    const run = new Run(surface, {
      start: s.start || surface.start, lr: s.lr == null ? surface.lr : s.lr, momentum: s.momentum || 0,
      batchSize: s.batch_size == null ? null : s.batch_size, seed: s.seed || 0,
      steps: s.steps == null ? DATA.steps : s.steps, stopTol: s.stop_tol == null ? DATA.stop_tol : s.stop_tol,
      bound: DATA.divergence_bound,
    });
    while (run.step()) { /* until at rest, diverged or out of steps */ }
    return { points: run.points, batches: run.batches, steps: run.t, converged: run.converged, diverged: run.diverged };
  }

  // ------------------------------------------------------------------ the point's type

  function eigen(H) {
    if (H.length === 1) return { values: [H[0][0]], vectors: [[1]] };
    const [[a, b], [, d]] = H;
    const mean = (a + d) / 2, radius = Math.hypot((a - d) / 2, b);
    const values = [mean - radius, mean + radius];
    const vectors = values.map((value, k) => {
      if (b === 0) return (a === d ? k === 0 : (Math.abs(a - value) <= Math.abs(d - value))) ? [1, 0] : [0, 1];
      const u = [b, value - a], v = [value - d, b];
      const w = norm(u) >= norm(v) ? u : v;
      return w.map((x) => x / norm(w));
    });
    return { values, vectors };
  }

  /* When the page calls a ball "at rest" and a point critical. A rule with absolute numbers would
   * mean something else on every surface (its slopes range from about 1 on the 1-D ball to about 145 on
   * the valley with κ = 200), so both thresholds are fractions of the plotted surface's own scale:
   *   D = the diagonal of the plotted domain (its width in 1-D),
   *   G = (max L − min L) / D over that domain, sampled on a grid: the surface's typical slope.
   * A point is critical when ‖∇L(θ)‖ ≤ REST_FRACTION · G (never stricter than the stopping rule's
   * stop_tol, so that a run the stopping rule ended is at a critical point); its type then follows from
   * the signs of the Hessian's eigenvalues there, as in batchlab.toy.surfaces.classify. A ball is at
   * rest when it is at a critical point and its next step ‖λm − ηg‖ is at most REST_FRACTION · D (well
   * under a pixel on the plot), or when the stopping rule ended its run. The stopping
   * rule itself (‖∇L‖ and ‖m‖ below stop_tol, absolute) is Python's and still decides when a run ends,
   * so that the page's trajectories stay those of batchlab.toy.
   */
  function restScale(surface) {
    if (surface.restScale) return surface.restScale;
    const samples = surface.dim === 1 ? 401 : 65;
    const [[x0, x1], [y0, y1] = [0, 0]] = surface.domain;
    let lo = Infinity, hi = -Infinity;
    for (let j = 0; j < (surface.dim === 1 ? 1 : samples); j++) {
      for (let i = 0; i < samples; i++) {
        const x = x0 + (x1 - x0) * i / (samples - 1), y = y0 + (y1 - y0) * j / (samples - 1);
        const v = surface.value(surface.dim === 1 ? [x] : [x, y]);
        lo = Math.min(lo, v); hi = Math.max(hi, v);
      }
    }
    const diagonal = Math.hypot(x1 - x0, y1 - y0), slope = (hi - lo) / diagonal;
    surface.restScale = {
      diagonal, slope,
      gradient: Math.max(REST_FRACTION * slope, DATA.stop_tol),
      step: Math.max(REST_FRACTION * diagonal, DATA.stop_tol),
    };
    return surface.restScale;
  }

  function nextStep(run) { return run.m.map((v, d) => run.o.momentum * v - run.o.lr * run.nextGrad[d]); }

  function atRest(run, point) {
    if (run.converged) return true;
    if (run.diverged || point.kind === "not critical") return false;
    return norm(nextStep(run)) <= restScale(run.surface).step;
  }

  function describePoint(surface, theta) {
    const gradient = surface.grad(theta), gradientNorm = norm(gradient);
    const { values, vectors } = eigen(surface.hessian(theta));
    const positive = values.every((v) => v > EIGENVALUE_TOLERANCE);
    const negative = values.every((v) => v < -EIGENVALUE_TOLERANCE);
    const mixed = values.some((v) => v > EIGENVALUE_TOLERANCE) && values.some((v) => v < -EIGENVALUE_TOLERANCE);
    let kind = "not critical", escape = null;
    if (gradientNorm <= restScale(surface).gradient) {
      kind = positive ? "minimum" : negative ? "maximum" : mixed ? "saddle" : "degenerate critical point";
      if (kind === "saddle") escape = vectors[0];  // eigenvector of the negative eigenvalue: L falls both ways
    }
    return { loss: surface.value(theta), gradientNorm, eigenvalues: values, kind, escape };
  }

  // ------------------------------------------------------------------ the page

  const RUNS = [
    { key: "gd", title: "Gradient descent", full: true, momentum: false },
    { key: "momentum", title: "Momentum", full: true, momentum: true },
    { key: "sgd", title: "Mini-batch SGD", full: false, momentum: false },
    { key: "sgd-momentum", title: "Mini-batch SGD with momentum", full: false, momentum: true },
  ];
  const $ = (id) => document.getElementById(id);
  // Every slider a labelled <input type=range> (keyboard: arrows, Page Up/Down, Home/End) with its value shown.
  const SLIDERS = [  // id, label, what the wide layout adds to it, min, max, step, initial value
    ["eta", "learning rate η", "", 0.001, 0.2, 0.001, 0.05],
    ["lambda", "momentum λ", "", 0, 0.99, 0.01, 0.9],
    ["batch", "batch size B", "", 1, 12, 1, 2],
    ["seed", "seed", " (batch order)", 0, 99, 1, 0],
    ["condition", "condition κ", "", 1, 200, 1, 100],
    ["speed", "steps/s", " (animation speed)", 1, 240, 1, 20],
  ];
  const inputs = {};
  for (const [id, text, detail, min, max, step, value] of SLIDERS) {
    const field = document.createElement("div");
    field.className = "field"; field.id = `${id}-field`;
    field.innerHTML = `<label for="${id}"><span>${text}<span class="detail">${detail}</span></span>`
      + `<output id="${id}-value" for="${id}"></output></label>`
      + `<input type="range" id="${id}" min="${min}" max="${max}" step="${step}" value="${value}">`;
    $("sliders").appendChild(field);
    inputs[id] = $(id);
  }
  const state = { surfaceName: DATA.surfaces[0].name, start: null, surface: null, runs: [], playing: false,
                  nudges: null, lastFrame: null, carry: 0 };

  const fmt = (v) => {
    if (!Number.isFinite(v)) return String(v);
    if (v === 0) return "0";
    const a = Math.abs(v);
    return a >= 1e-3 && a < 1e5 ? String(Number(v.toPrecision(4))) : v.toExponential(2);
  };
  const SUPERSCRIPT = { "-": "⁻", 0: "⁰", 1: "¹", 2: "²", 3: "³", 4: "⁴", 5: "⁵", 6: "⁶", 7: "⁷", 8: "⁸", 9: "⁹" };
  function multiple(k) {  // a round factor in words' form: 200 -> "200", 2e5 -> "200,000", 5e7 -> "5 × 10⁷", 1e-4 -> "10⁻⁴"
    if (k >= 1 && k < 1e6) return Math.round(k).toLocaleString("en-US");
    const exponent = Math.floor(Math.log10(k) + 1e-9), mantissa = Number((k / Math.pow(10, exponent)).toPrecision(3));
    const power = `10${String(exponent).replace(/./g, (c) => SUPERSCRIPT[c])}`;
    return mantissa === 1 ? power : `${mantissa} × ${power}`;
  }
  const vec = (v) => (v.length === 1 ? fmt(v[0]) : `(${v.map(fmt).join(", ")})`);
  const snap = (v) => Math.round(v / START_GRID) * START_GRID;
  const settings = () => ({
    lr: Number(inputs.eta.value), momentum: Number(inputs.lambda.value), batchSize: Number(inputs.batch.value),
    seed: Number(inputs.seed.value), condition: Number(inputs.condition.value), speed: Number(inputs.speed.value),
  });

  function buildPanels() {
    const holder = $("runs");
    for (const spec of RUNS) {
      const article = document.createElement("article");
      article.className = "run"; article.dataset.run = spec.key;
      article.innerHTML = `<div class="title"><h2>${spec.title}</h2><p class="rule"></p></div>`
        + `<canvas role="img" aria-label="${spec.title}: the surface and the ball's path; click to place the start"></canvas>`
        + `<p class="arrow-scale"></p><dl class="readout" aria-live="off"></dl>`;
      holder.appendChild(article);
      spec.article = article; spec.canvas = article.querySelector("canvas"); spec.rule = article.querySelector(".rule");
      spec.arrowScale = article.querySelector(".arrow-scale");
      spec.readout = article.querySelector(".readout");
      spec.canvas.addEventListener("click", (event) => placeStart(spec, event));
    }
  }

  function resetRuns() {
    const s = settings();
    state.surface = makeSurface(state.surfaceName, s.condition);
    const n = state.surface.tilts.length;
    state.runs = RUNS.map((spec) => new Run(state.surface, {
      start: state.start, lr: s.lr, momentum: spec.momentum ? s.momentum : 0,
      batchSize: spec.full ? n : s.batchSize, seed: s.seed, steps: DATA.steps, stopTol: DATA.stop_tol,
      bound: DATA.divergence_bound,
    }));
    state.nudges = new Mulberry32((s.seed + 0x9E3779B9) >>> 0);
    const scale = restScale(state.surface);
    const fraction = multiple(REST_FRACTION);
    $("rest-rule").textContent = `A ball is at rest when ‖∇L‖ ≤ ${fraction}·G = ${fmt(scale.gradient)} and its next step `
      + `≤ ${fraction}·D = ${fmt(scale.step)}, where D = ${fmt(scale.diagonal)} is the plot's `
      + `${state.surface.dim === 1 ? "width" : "diagonal"} and `
      + `G = (max L − min L)/D = ${fmt(scale.slope)} the surface's typical slope; the point's type then comes `
      + "from the signs of the Hessian's eigenvalues. A run ends (and is at rest) when ‖∇L‖ and ‖m‖ are both "
      + `below ${fmt(DATA.stop_tol)}, as in batchlab toy.`;
    RUNS.forEach((spec, i) => {
      const lambda = spec.momentum ? s.momentum : 0;
      spec.rule.textContent = `${spec.full ? `B = N = ${n}` : `B = ${s.batchSize} of N = ${n}`}, λ = ${lambda}, η = ${s.lr}`;
      spec.run = state.runs[i];
    });
    draw();
  }

  function showValues() {
    const s = settings();
    $("eta-value").textContent = s.lr.toFixed(3);
    $("lambda-value").textContent = s.momentum.toFixed(2);
    $("batch-value").textContent = `${s.batchSize}${s.batchSize === Number(inputs.batch.max) ? " = N (full batch)" : ""}`;
    $("seed-value").textContent = String(s.seed);
    $("condition-value").textContent = String(s.condition);
    $("speed-value").textContent = String(s.speed);
    inputs.eta.setAttribute("aria-valuetext", `η = ${s.lr}`);
    inputs.lambda.setAttribute("aria-valuetext", `λ = ${s.momentum}`);
    inputs.batch.setAttribute("aria-valuetext", `B = ${s.batchSize}`);
  }

  function selectSurface(name) {
    state.surfaceName = name;
    const entry = surfaceEntry(name);
    state.start = entry.start.slice();
    inputs.eta.value = String(entry.lr);
    inputs.batch.max = String(entry.examples.size);
    $("condition-field").hidden = name !== "valley";
    $("start-y-label").hidden = entry.dim < 2;
    $("dataset-note").textContent = `Each of the N = ${entry.examples.size} examples has its own loss `
      + `ℓᵢ(θ) = L(θ) + zᵢ·θ with Σ zᵢ = 0, so a batch b follows its own surface Lᵇ = L + mean zᵢ (drawn faintly); `
      + `each epoch the seed shuffles the examples into ⌊N/B⌋ batches. Formula: ${entry.formula}.`;
    showValues(); showStart(); resetRuns();
  }

  function showStart() {
    $("start-x").value = fmt(state.start[0]);
    if (state.start.length > 1) $("start-y").value = fmt(state.start[1]);
  }

  function setStart(theta) {
    state.start = theta.map((v) => (Object.is(v, -0) ? 0 : v));
    showStart(); pause(); resetRuns();
  }

  function placeStart(spec, event) {
    const view = spec.view; if (!view) return;
    const rect = spec.canvas.getBoundingClientRect();
    const theta = view.toTheta(event.clientX - rect.left - spec.canvas.clientLeft,
                               event.clientY - rect.top - spec.canvas.clientTop);
    setStart(theta.map(snap));
  }

  function stepAll() {
    let moved = false;
    for (const run of state.runs) moved = run.step() || moved;
    return moved;
  }

  function play() {
    if (state.playing) return;
    state.playing = true; state.lastFrame = null; state.carry = 0;
    $("play").textContent = "Pause"; $("play").setAttribute("aria-pressed", "true");
    requestAnimationFrame(frame);
  }
  function pause() {
    state.playing = false;
    $("play").textContent = "Play"; $("play").setAttribute("aria-pressed", "false");
  }
  function frame(time) {
    if (!state.playing) return;
    if (state.lastFrame != null) state.carry += Math.min(0.25, (time - state.lastFrame) / 1000) * settings().speed;
    state.lastFrame = time;
    let moved = true;
    for (; state.carry >= 1 && moved; state.carry -= 1) moved = stepAll();
    draw();
    if (state.runs.every((run) => run.done)) { pause(); return; }
    requestAnimationFrame(frame);
  }

  function nudge() {
    const dim = state.surface.dim;
    let delta;
    if (dim === 1) delta = [state.nudges.below(2) ? NUDGE : -NUDGE];
    else {
      const angle = 2 * Math.PI * (state.nudges.nextUint32() / 4294967296);
      delta = [NUDGE * Math.cos(angle), NUDGE * Math.sin(angle)];
    }
    for (const run of state.runs) run.nudge(delta);
    draw();
  }

  // ------------------------------------------------------------------ drawing

  const COLORS = { previous: "#6e7781", gradient: "#cf222e", movement: "#0969da", path: "#24292f",
                   ball: "#f0883e", batch: "9, 105, 218", contour: "rgba(50, 60, 80, 0.32)", escape: "#9a6700" };
  const BANDS = [[207, 232, 255], [243, 246, 232], [255, 227, 199]];
  const LEVELS = 14;
  const GRID = 96;  // cells across for contours
  const layerCache = new Map();

  function makeView(surface, width) {
    const [[x0, x1]] = surface.domain;
    if (surface.dim === 1) {
      const height = Math.round(width * 0.62);
      let lo = Infinity, hi = -Infinity;
      for (let i = 0; i <= 400; i++) {
        const v = surface.value([x0 + (x1 - x0) * i / 400]); lo = Math.min(lo, v); hi = Math.max(hi, v);
      }
      const pad = 0.12 * (hi - lo), y0 = lo - pad, y1 = hi + pad;
      return {
        width, height, dim: 1, x0, x1, y0, y1,
        px: (x) => (x - x0) / (x1 - x0) * width,
        py: (v) => height - (v - y0) / (y1 - y0) * height,
        scale: width / (x1 - x0),
        toTheta: (px) => [x0 + px / width * (x1 - x0)],
      };
    }
    const [, [y0, y1]] = surface.domain;
    const height = Math.round(width * (y1 - y0) / (x1 - x0));
    return {
      width, height, dim: 2, x0, x1, y0, y1,
      px: (x) => (x - x0) / (x1 - x0) * width,
      py: (y) => height - (y - y0) / (y1 - y0) * height,
      scale: width / (x1 - x0),
      toTheta: (px, py) => [x0 + px / width * (x1 - x0), y0 + (height - py) / height * (y1 - y0)],
    };
  }

  function gridValues(surface, view) {
    const nx = GRID, ny = Math.max(8, Math.round(GRID * view.height / view.width));
    const xs = Array.from({ length: nx + 1 }, (_, i) => view.x0 + (view.x1 - view.x0) * i / nx);
    const ys = Array.from({ length: ny + 1 }, (_, j) => view.y0 + (view.y1 - view.y0) * j / ny);
    const values = ys.map((y) => xs.map((x) => surface.value([x, y])));
    const sorted = values.flat().sort((a, b) => a - b);
    const levels = Array.from({ length: LEVELS }, (_, k) => sorted[Math.floor((k + 0.5) / LEVELS * (sorted.length - 1))]);
    return { xs, ys, values, levels };
  }

  function contourPath(grid, values, view, levels) {
    // Marching squares: every cell edge whose ends straddle a level gets a crossing point.
    const path = new Path2D();
    const { xs, ys } = grid;
    for (const level of levels) {
      for (let j = 0; j + 1 < ys.length; j++) {
        for (let i = 0; i + 1 < xs.length; i++) {
          const corners = [[xs[i], ys[j], values[j][i]], [xs[i + 1], ys[j], values[j][i + 1]],
                           [xs[i + 1], ys[j + 1], values[j + 1][i + 1]], [xs[i], ys[j + 1], values[j + 1][i]]];
          const hits = [];
          for (let e = 0; e < 4; e++) {
            const [ax, ay, av] = corners[e], [bx, by, bv] = corners[(e + 1) % 4];
            if ((av < level) !== (bv < level)) {
              const f = (level - av) / (bv - av);
              hits.push([view.px(ax + f * (bx - ax)), view.py(ay + f * (by - ay))]);
            }
          }
          for (let h = 0; h + 1 < hits.length; h += 2) {
            path.moveTo(hits[h][0], hits[h][1]); path.lineTo(hits[h + 1][0], hits[h + 1][1]);
          }
        }
      }
    }
    return path;
  }

  function baseLayer(surface, view, ratio) {
    const key = [surface.name, surface.params.condition, view.width, view.height, ratio].join("|");
    if (layerCache.has(key)) return layerCache.get(key);
    const layer = document.createElement("canvas");
    layer.width = Math.round(view.width * ratio); layer.height = Math.round(view.height * ratio);
    const ctx = layer.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    let grid = null;
    if (surface.dim === 2) {
      grid = gridValues(surface, view);
      const nx = grid.xs.length, ny = grid.ys.length;
      const image = new ImageData(nx, ny);
      for (let j = 0; j < ny; j++) {
        for (let i = 0; i < nx; i++) {
          const v = grid.values[j][i];
          let band = 0; while (band < LEVELS && v >= grid.levels[band]) band++;
          const f = band / LEVELS, half = f < 0.5;
          const [a, b] = half ? [BANDS[0], BANDS[1]] : [BANDS[1], BANDS[2]];
          const g = half ? f * 2 : f * 2 - 1;
          const o = 4 * ((ny - 1 - j) * nx + i);
          for (let c = 0; c < 3; c++) image.data[o + c] = Math.round(a[c] + (b[c] - a[c]) * g);
          image.data[o + 3] = 255;
        }
      }
      const small = document.createElement("canvas");
      small.width = nx; small.height = ny; small.getContext("2d").putImageData(image, 0, 0);
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(small, 0, 0, view.width, view.height);
      ctx.strokeStyle = COLORS.contour; ctx.lineWidth = 1;
      ctx.stroke(contourPath(grid, grid.values, view, grid.levels));
    } else {
      ctx.fillStyle = "#fbfcfd"; ctx.fillRect(0, 0, view.width, view.height);
      ctx.strokeStyle = "#d8dee4"; ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(0, view.py(0)); ctx.lineTo(view.width, view.py(0)); ctx.stroke();
      ctx.strokeStyle = COLORS.path; ctx.lineWidth = 2; ctx.beginPath();
      for (let i = 0; i <= view.width; i++) {
        const y = view.py(surface.value([view.toTheta(i)[0]]));
        if (i === 0) ctx.moveTo(i, y); else ctx.lineTo(i, y);
      }
      ctx.stroke();
    }
    ticks(ctx, view);
    const entry = { layer, grid };
    layerCache.set(key, entry);
    if (layerCache.size > 24) layerCache.delete(layerCache.keys().next().value);
    return entry;
  }

  function ticks(ctx, view) {
    ctx.font = "12px system-ui, sans-serif"; ctx.fillStyle = "#57606a";
    ctx.textBaseline = "bottom";
    const step = niceStep((view.x1 - view.x0) / 5);
    for (let x = Math.ceil(view.x0 / step) * step; x <= view.x1; x += step) {
      const px = view.px(x); if (px < 14 || px > view.width - 14) continue;
      ctx.fillRect(px, view.height - 4, 1, 4);
      ctx.textAlign = "center"; ctx.fillText(fmt(Number(x.toFixed(6))), px, view.height - 5);
    }
    ctx.textBaseline = "middle"; ctx.textAlign = "left";
    const ystep = niceStep((view.y1 - view.y0) / 4);
    for (let y = Math.ceil(view.y0 / ystep) * ystep; y <= view.y1; y += ystep) {
      const py = view.py(y); if (py < 26 || py > view.height - 22) continue;
      ctx.fillText(fmt(Number(y.toFixed(6))), 5, py);
    }
    ctx.textBaseline = "top";
    ctx.fillText(view.dim === 1 ? "L(θ) against θ" : "θ₂ up, θ₁ across", 6, 4);
  }

  function niceStep(raw) {
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const f of [1, 2, 5, 10]) if (f * power >= raw) return f * power;
    return 10 * power;
  }

  function sizeCanvas(spec, view) {
    const ratio = window.devicePixelRatio || 1;
    const w = Math.round(view.width * ratio), h = Math.round(view.height * ratio);
    if (spec.canvas.width !== w || spec.canvas.height !== h) { spec.canvas.width = w; spec.canvas.height = h; }
    spec.canvas.style.width = `${view.width + 2}px`;  // + the 1 px border on each side
    const ctx = spec.canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    return { ctx, ratio };
  }

  function draw() {
    const shown = RUNS.filter((spec) => spec.run);
    const points = shown.map((spec) => describePoint(state.surface, spec.run.theta));
    shown.forEach((spec, i) => writeReadout(spec, spec.run, points[i]));
    const tallest = canvasHeightBudget();
    shown.forEach((spec, i) => drawPanel(spec, points[i], tallest));
  }

  function canvasHeightBudget() {
    /* How tall a canvas may be. Wide layout: both rows of panels, each a canvas plus its title, arrow
     * line and readout (whose heights do not change as the ball rolls), fit in the window below the
     * top of the panels. Narrow layout: one canvas fits in the window under the sticky sliders, so
     * that the sliders and the ball are on screen together. */
    if (window.matchMedia(WIDE_LAYOUT).matches) {
      const runs = $("runs"), style = getComputedStyle(runs);
      const rows = Math.ceil(RUNS.length / style.gridTemplateColumns.split(" ").length);
      const around = Math.max(...RUNS.map((spec) => spec.article.getBoundingClientRect().height
        - spec.canvas.getBoundingClientRect().height));
      const top = runs.getBoundingClientRect().top + window.scrollY;
      const gaps = (rows - 1) * (parseFloat(style.rowGap) || 0);
      return (window.innerHeight - top - PAGE_BOTTOM_PX - gaps) / rows - around;
    }
    return window.innerHeight - $("controls").getBoundingClientRect().height - NARROW_TITLE_PX;
  }

  function drawPanel(spec, point, tallest) {
    const run = spec.run, surface = state.surface;
    // As wide as the panel and as tall as the layout allows (canvasHeightBudget), not below 160 px.
    const panel = getComputedStyle(spec.article);
    const room = Math.max(160, Math.floor(spec.article.clientWidth - parseFloat(panel.paddingLeft)
      - parseFloat(panel.paddingRight) - 2));  // - the canvas's 1 px border on each side
    const aspect = makeView(surface, 100).height / 100;
    const view = makeView(surface, Math.max(160, Math.min(room, Math.floor(tallest / aspect) - 2)));
    spec.view = view;
    const { ctx, ratio } = sizeCanvas(spec, view);
    const base = baseLayer(surface, view, ratio);
    ctx.clearRect(0, 0, view.width, view.height);
    ctx.drawImage(base.layer, 0, 0, view.width, view.height);
    if (!spec.full && run.stream && run.stream.batchSize < surface.tilts.length) drawBatchSurfaces(ctx, view, base, run);
    drawCriticalPoints(ctx, view, surface);
    drawPath(ctx, view, run);
    const ball = ballPixel(view, surface, run.theta);
    if (point.escape && ball) drawEscape(ctx, ball, point.escape);
    const resting = atRest(run, point);
    const k = ball && !run.done && !resting ? drawArrows(ctx, view, run, ball) : null;
    if (ball) {
      ctx.beginPath(); ctx.arc(ball[0], ball[1], 6.5, 0, 2 * Math.PI);
      ctx.fillStyle = COLORS.ball; ctx.fill(); ctx.lineWidth = 1.5; ctx.strokeStyle = COLORS.path; ctx.stroke();
    }
    spec.arrowScale.textContent = run.diverged ? "Diverged: no arrows."
      : resting ? "At rest: the next step is too short to draw."
        : k == null ? "Step limit reached: no arrows."
          : k === 1 ? "Arrows to scale: they are the next step."
            : `Arrows drawn ${multiple(k)}× longer than the step, so that it can be seen.`;
  }

  function ballPixel(view, surface, theta) {
    if (!theta.every(Number.isFinite)) return null;
    return view.dim === 1 ? [view.px(theta[0]), view.py(surface.value(theta))] : [view.px(theta[0]), view.py(theta[1])];
  }

  function drawBatchSurfaces(ctx, view, base, run) {
    const surface = run.surface;
    if (view.dim === 1) {
      for (const batch of run.stream.epoch) {
        const current = batch === run.nextBatch;
        const z = surface.batchTilt(batch)[0];
        ctx.strokeStyle = `rgba(${COLORS.batch}, ${current ? 0.7 : 0.22})`;
        ctx.lineWidth = current ? 1.5 : 1; ctx.setLineDash(current ? [5, 4] : []);
        ctx.beginPath();
        for (let i = 0; i <= view.width; i += 2) {
          const x = view.toTheta(i)[0];
          const y = view.py(surface.value([x]) + z * x);
          if (i === 0) ctx.moveTo(i, y); else ctx.lineTo(i, y);
        }
        ctx.stroke();
      }
      ctx.setLineDash([]);
      return;
    }
    if (run.nextBatch == null) return;
    const [zx, zy] = surface.batchTilt(run.nextBatch);
    const grid = base.grid;
    const values = grid.ys.map((y, j) => grid.xs.map((x, i) => grid.values[j][i] + zx * x + zy * y));
    ctx.strokeStyle = `rgba(${COLORS.batch}, 0.45)`; ctx.lineWidth = 1;
    ctx.stroke(contourPath(grid, values, view, grid.levels));
  }

  function drawCriticalPoints(ctx, view, surface) {
    for (const point of surface.critical) {
      const p = ballPixel(view, surface, point.point);
      if (!p) continue;
      ctx.save(); ctx.translate(p[0], p[1]);
      ctx.lineWidth = 1.5;
      if (point.kind === "minimum") {
        ctx.strokeStyle = "#1a7f37"; ctx.beginPath(); ctx.arc(0, 0, 4, 0, 2 * Math.PI); ctx.stroke();
      } else {
        ctx.strokeStyle = point.kind === "saddle" ? COLORS.escape : COLORS.gradient;
        ctx.beginPath(); ctx.moveTo(-4, -4); ctx.lineTo(4, 4); ctx.moveTo(-4, 4); ctx.lineTo(4, -4); ctx.stroke();
      }
      ctx.restore();
    }
  }

  function drawPath(ctx, view, run) {
    const surface = run.surface;
    ctx.strokeStyle = "rgba(36, 41, 47, 0.75)"; ctx.lineWidth = 1.2; ctx.beginPath();
    let open = false;
    for (const theta of run.points) {
      const p = ballPixel(view, surface, theta);
      if (!p) { open = false; continue; }
      if (open) ctx.lineTo(p[0], p[1]); else ctx.moveTo(p[0], p[1]);
      open = true;
    }
    if (view.dim === 2) ctx.stroke();
    else {  // 1-D: every iterate a dot on the curve, as in the lecture's drawing
      ctx.fillStyle = "rgba(36, 41, 47, 0.55)";
      for (const theta of run.points) {
        const p = ballPixel(view, surface, theta);
        if (p) { ctx.beginPath(); ctx.arc(p[0], p[1], 2, 0, 2 * Math.PI); ctx.fill(); }
      }
    }
    const start = ballPixel(view, surface, run.points[0]);
    if (start) {
      ctx.beginPath(); ctx.arc(start[0], start[1], 4, 0, 2 * Math.PI);
      ctx.lineWidth = 1.5; ctx.strokeStyle = COLORS.path; ctx.stroke();
    }
  }

  function arrow(ctx, from, vector, color, width) {
    const to = [from[0] + vector[0], from[1] + vector[1]];
    const length = Math.hypot(vector[0], vector[1]);
    ctx.strokeStyle = color; ctx.fillStyle = color; ctx.lineWidth = width;
    ctx.beginPath(); ctx.moveTo(from[0], from[1]); ctx.lineTo(to[0], to[1]); ctx.stroke();
    if (length < 1) return to;
    const head = Math.min(8, 0.45 * length), ux = vector[0] / length, uy = vector[1] / length;
    ctx.beginPath(); ctx.moveTo(to[0], to[1]);
    ctx.lineTo(to[0] - head * ux + 0.5 * head * uy, to[1] - head * uy - 0.5 * head * ux);
    ctx.lineTo(to[0] - head * ux - 0.5 * head * uy, to[1] - head * uy + 0.5 * head * ux);
    ctx.closePath(); ctx.fill();
    return to;
  }

  function drawArrows(ctx, view, run, ball) {
    const lambda = run.o.momentum, eta = run.o.lr;
    const previous = run.m.map((v) => lambda * v), gradient = run.nextGrad.map((g) => -eta * g);
    const movement = nextStep(run);
    const toPx = (v) => (v.length === 1 ? [v[0] * view.scale, 0] : [v[0] * view.scale, -v[1] * view.scale]);
    const vectors = [previous, gradient, movement].map(toPx);
    const longest = Math.max(...vectors.map((v) => Math.hypot(v[0], v[1])));
    if (!(longest > 0) || !Number.isFinite(longest)) return null;
    let k = 1;  // shorter than ARROW_MIN_PX: all three drawn k times longer (the caption says so)
    if (longest < ARROW_MIN_PX) k = niceStep(ARROW_MIN_PX / longest);
    const [p, g, m] = vectors.map((v) => [v[0] * k, v[1] * k]);
    if (view.dim === 1) {  // one row per arrow above the ball, the gradient step continuing λm
      const row = (r) => [ball[0], ball[1] - 14 - 10 * r];
      const tip = arrow(ctx, row(0), p, COLORS.previous, 2.5);
      arrow(ctx, [tip[0], row(1)[1]], g, COLORS.gradient, 2.5);
      arrow(ctx, row(2), m, COLORS.movement, 2.5);
    } else {  // the triangle m = λm + (−ηg); the sum drawn first and wider, so parts on top stay visible
      arrow(ctx, ball, m, COLORS.movement, 4);
      const tip = arrow(ctx, ball, p, COLORS.previous, 2);
      arrow(ctx, tip, g, COLORS.gradient, 2);
    }
    return k;
  }

  function drawEscape(ctx, ball, direction) {
    const u = [direction[0] * 26, -direction[1] * 26];
    ctx.save(); ctx.setLineDash([4, 3]); ctx.strokeStyle = COLORS.escape; ctx.lineWidth = 1.5;
    ctx.beginPath(); ctx.moveTo(ball[0] - u[0], ball[1] - u[1]); ctx.lineTo(ball[0] + u[0], ball[1] + u[1]); ctx.stroke();
    ctx.restore();
  }

  function statusOf(run, point) {
    return run.diverged ? "diverged" : atRest(run, point) ? "at rest"
      : run.t >= run.o.steps ? `stopped at the step limit ${run.o.steps}` : "moving";
  }

  function writeReadout(spec, run, point) {
    // Read row by row; with three pairs to a row (wide panels) status and point type come first.
    const status = statusOf(run, point);
    const rows = [  // data-field, label, value, what the label means
      ["status", "status", status, "at rest: see the rule under the settings"],
      ["point", "point", point.kind, "the type of the point from the signs of the Hessian's eigenvalues, where ∇L ≈ 0"],
      ["step t", "step t", String(run.t), "updates so far"],
      ["θ", "θ", vec(run.theta), "where the ball is"],
      ["loss L(θ)", "L(θ)", fmt(point.loss), "the loss there"],
      ["‖∇L(θ)‖", "‖∇L(θ)‖", fmt(point.gradientNorm), "the length of the gradient of the full loss there"],
      ["escape direction", "escape", point.escape ? `±${vec(point.escape)}` : "—",
        "at a saddle: the eigenvector of the negative eigenvalue, along which L falls both ways"],
      ["Hessian eigenvalues", "eigenvalues", point.eigenvalues.map(fmt).join(", "), "the Hessian's eigenvalues there"],
      ["next batch", "next batch", run.nextBatch == null ? "—" : (run.nextBatch.length === run.surface.tilts.length
        ? `all ${run.nextBatch.length}` : run.nextBatch.map((i) => i + 1).join(", ")), "the examples of the next update"],
    ];
    spec.readout.innerHTML = "";
    for (const [field, label, value, meaning] of rows) {
      const dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = label; dt.title = meaning;
      dd.textContent = value; dd.title = value;  // the whole value, where a narrow panel cuts it short
      if (field === "point") dd.className = `kind-${point.kind.split(" ")[0]}`;
      if (field === "status" && status === "at rest") dd.className = "status-rest";
      dd.dataset.field = field;
      spec.readout.append(dt, dd);
    }
  }

  // ------------------------------------------------------------------ wiring

  function init() {
    const select = $("surface");
    for (const entry of DATA.surfaces) {
      const option = document.createElement("option");
      option.value = entry.name; option.textContent = entry.label;
      select.appendChild(option);
    }
    buildPanels();
    select.addEventListener("change", () => { pause(); selectSurface(select.value); });
    for (const key of ["eta", "lambda", "batch", "seed", "condition"]) {
      inputs[key].addEventListener("input", () => { showValues(); resetRuns(); });
    }
    inputs.speed.addEventListener("input", showValues);
    $("play").addEventListener("click", () => (state.playing ? pause() : play()));
    $("step").addEventListener("click", () => { pause(); stepAll(); draw(); });
    $("reset").addEventListener("click", () => { pause(); resetRuns(); });
    $("nudge").addEventListener("click", nudge);
    for (const [id, d] of [["start-x", 0], ["start-y", 1]]) {
      $(id).addEventListener("change", () => {
        const value = Number($(id).value);
        if (!Number.isFinite(value)) { showStart(); return; }
        const start = state.start.slice(); start[d] = value; setStart(start);
      });
    }
    let resizeTimer = null;
    window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(draw, 60); });
    selectSurface(state.surfaceName);
  }

  window.batchlabPlayground = {
    /* For tests and the curious: the page's own numbers. */
    trajectory,
    surfaces: DATA.surfaces.map((s) => s.name),
    mulberry32(seed, count) { const g = new Mulberry32(seed); return Array.from({ length: count }, () => g.nextUint32()); },
    state() {
      return {
        surface: state.surfaceName, start: state.start.slice(), playing: state.playing, settings: settings(),
        runs: RUNS.map((spec) => ({
          key: spec.key, t: spec.run.t, theta: spec.run.theta.slice(), points: spec.run.points.map((p) => p.slice()),
          done: spec.run.done, converged: spec.run.converged, diverged: spec.run.diverged,
          kind: describePoint(state.surface, spec.run.theta).kind,
          status: statusOf(spec.run, describePoint(state.surface, spec.run.theta)),
        })),
      };
    },
    restScale() { return Object.assign({}, restScale(state.surface)); },
    pixelOf(theta, panel) {  // viewport coordinates of θ on a panel's canvas (for clicking in tests)
      const spec = RUNS[panel || 0], rect = spec.canvas.getBoundingClientRect();
      const p = ballPixel(spec.view, state.surface, theta);
      return { x: rect.left + spec.canvas.clientLeft + p[0], y: rect.top + spec.canvas.clientTop + p[1] };
    },
  };

  init();
})();

"""What watching training costs the trainer: the Streamlit server's CPU while the Train page is open in a headless
Chromium during a run, the browser's CPU, and the trainer's step time with the page open and with it closed.

    python bench/train_page_cpu.py                      # tiny model, 60 s per window
    python bench/train_page_cpu.py --model smollm2-135m-instruct --step-delay 0 --seconds 90

A fresh workspace (in a temp folder) gets the English sample prepared by ``python -m core prepare``, a LoRA run
config and a ``streamlit run app.py`` server (no file watcher, as the app ships); the browser presses Start on the
Train page. CPU is read from psutil's process times over each window (user + system, in % of one core); the
browser's is the sum over the Chromium processes this script started. Needs Debian's chromium and playwright.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: `core` is imported from the repository
CHROMIUM = "/usr/bin/chromium"
SAMPLE = ROOT / "assets" / "samples" / "support_faq_en.csv"


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(home: Path, model: str, max_steps: int, env: dict) -> None:
    """A prepared dataset and a project whose run config trains ``model`` for ``max_steps`` steps."""
    subprocess.run([sys.executable, "-m", "core", "prepare", str(SAMPLE), "--name", "bench-data", "--model", "approx"],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    config = {"method": "lora", "lora": {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]},
              "train": {"epochs": 1, "max_steps": max_steps, "batch_size": 4, "max_seq_len": 256, "eval_every": 50,
                        "save_every": 1000, "seed": 1}}
    project = {"name": "CPU bench", "purpose": "support", "system_prompt": "You are a support assistant.",
               "base_model": model, "active_dataset": "bench-data", "run_config": config}
    (home / "project.json").write_text(json.dumps(project), encoding="utf-8")


def start_streamlit(home: Path, env: dict) -> tuple[subprocess.Popen, str]:
    """`streamlit run app.py` over ``home``; (process, URL) once it answers its health check."""
    port = free_port()
    log = open(home.parent / "streamlit.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true",
                             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(180):
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise SystemExit("streamlit did not start: " + (home.parent / "streamlit.log").read_text()[-2000:])


def browser_processes() -> list:
    """The Chromium processes under this script (Playwright's driver starts them)."""
    import psutil

    return [p for p in psutil.Process().children(recursive=True) if "chrom" in p.name().lower()]


def cpu_seconds(procs: list) -> float:
    """User + system CPU seconds of ``procs`` (processes that ended count as 0)."""
    import psutil

    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def train_lines(home: Path, run_id: str) -> list[dict]:
    """The training lines of the run's metrics.jsonl."""
    path = home / "runs" / run_id / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    return [r for r in rows if r.get("loss") is not None and r.get("elapsed_s") is not None]


def step_time(home: Path, run_id: str, since_step: int) -> tuple[float, int]:
    """(mean seconds per step, steps) over the steps logged after ``since_step``."""
    rows = [r for r in train_lines(home, run_id) if r["step"] >= since_step]
    if len(rows) < 2:
        return float("nan"), 0
    steps = rows[-1]["step"] - rows[0]["step"]
    return (rows[-1]["elapsed_s"] - rows[0]["elapsed_s"]) / max(1, steps), steps


def last_step(home: Path, run_id: str) -> int:
    rows = train_lines(home, run_id)
    return rows[-1]["step"] if rows else 0


def window(server, home: Path, run_id: str, seconds: float) -> dict:
    """CPU of the server and the browser, and the trainer's step time, over ``seconds``."""
    import psutil

    browser = browser_processes()
    step0 = last_step(home, run_id)
    s0, b0, t0 = cpu_seconds([psutil.Process(server.pid)]), cpu_seconds(browser), time.monotonic()
    time.sleep(seconds)
    s1, b1, elapsed = cpu_seconds([psutil.Process(server.pid)]), cpu_seconds(browser), time.monotonic() - t0
    per_step, steps = step_time(home, run_id, step0)
    return {"server": 100 * (s1 - s0) / elapsed, "browser": 100 * (b1 - b0) / elapsed, "step_s": per_step,
            "steps": steps, "seconds": elapsed}


def start_run(page, url: str, home: Path) -> str:
    """Open the Train page, press Start, wait until the run has logged a step; its id."""
    page.goto(url)  # home first: a server's first session landing on a deep link gets "Page not found"
    page.get_by_test_id("stSidebar").wait_for()
    page.goto(f"{url}/train")
    page.get_by_role("button", name="Start training").click()
    end = time.time() + 600
    while time.time() < end:
        run_id = json.loads((home / "project.json").read_text()).get("active_run")
        if run_id and last_step(home, run_id) > 0:
            page.get_by_test_id("stPlotlyChart").first.wait_for(timeout=300_000)
            return run_id
        time.sleep(0.5)
    raise SystemExit("the run did not log a step within 10 minutes: " + str(list((home / "runs").glob("*/train.log"))))


def table(rows: list[tuple[str, dict]]) -> str:
    """The results as a plain-text table."""
    head = f"{'Train page':<12}{'server CPU %':>14}{'browser CPU %':>15}{'step time s':>13}{'steps':>7}{'window s':>10}"
    lines = [head, "-" * len(head)]
    for name, r in rows:
        lines.append(f"{name:<12}{r['server']:>14.1f}{r['browser']:>15.1f}{r['step_s']:>13.3f}{r['steps']:>7}"
                     f"{r['seconds']:>10.0f}")
    return "\n".join(lines)


def main() -> None:
    """Parse the options, run the two windows (page open, page closed), print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="tiny-llama", help="base model of the run (default tiny-llama)")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each measuring window")
    ap.add_argument("--step-delay", default="0.2", help="AF_DEBUG_STEP_DELAY: seconds the trainer sleeps per step, "
                    "so a tiny model's run lasts (0 for a real model)")
    ap.add_argument("--max-steps", type=int, default=2000)
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    home = Path(tempfile.mkdtemp(prefix="train-page-cpu-")) / "workspace"
    home.mkdir(parents=True)
    env = {**os.environ, "ASSISTANT_FACTORY_HOME": str(home), "PYTHONUNBUFFERED": "1",
           "AF_DEBUG_STEP_DELAY": str(args.step_delay)}
    env.setdefault("ASSISTANT_FACTORY_MODELS", str(ROOT / "workspace" / "models"))
    seed(home, args.model, args.max_steps, env)
    server, url = start_streamlit(home, env)
    os.environ["ASSISTANT_FACTORY_HOME"] = str(home)
    run_id = None
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1440, "height": 1600})
            page.set_default_timeout(120_000)
            run_id = start_run(page, url, home)
            time.sleep(5)  # let the first redraws settle
            opened = window(server, home, run_id, args.seconds)
            page.goto("about:blank")  # the page closed: the server has no session to feed
            time.sleep(3)
            closed = window(server, home, run_id, args.seconds)
            browser.close()
    finally:
        if run_id:
            from core.runs import stop

            stop(run_id)
        server.terminate()
        server.wait(15)
    print(f"model {args.model}, AF_DEBUG_STEP_DELAY {args.step_delay} s, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(table([("open", opened), ("closed", closed)]))


if __name__ == "__main__":
    main()

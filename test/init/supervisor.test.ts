import { afterEach, describe, expect, test, setDefaultTimeout } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FakeClock } from "../../init/supervisor/clock.ts";
import { LogRing } from "../../init/supervisor/log-ring.ts";
import { serviceSpecFrom, type ServiceSpec } from "../../init/supervisor/service-config.ts";
import { Supervisor, SupervisorError, type ServiceState } from "../../init/supervisor/supervisor.ts";
import { alive, tempDir, until } from "./helpers.ts";

// these start real processes; on a loaded 2-core machine they need more than the 5 s default
setDefaultTimeout(120_000);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function setup(opts: ConstructorParameters<typeof Supervisor>[0] = {}) {
  const dir = tempDir();
  const sup = new Supervisor({ testIntervalMs: 20, ...opts });
  cleanups.push(dir.cleanup, () => sup.shutdown());
  const spec = (name: string, doc: Record<string, unknown>): ServiceSpec => serviceSpecFrom(name, { shutdown_timeout: 2, ...doc }, `${name}.yaml`);
  const waitState = (name: string, ...states: ServiceState[]) =>
    until(() => states.includes(sup.status(name).state), `${name} to be ${states.join("|")} (is ${sup.status(name).state})`);
  return { dir: dir.path, sup, spec, waitState };
}

describe("supervisor", () => {
  test("starts services in dependency order, oneshots gate dependents", async () => {
    const { dir, sup, spec, waitState } = setup();
    const trace = join(dir, "trace");
    // monitored in reverse so only `after` can produce the right order
    sup.monitor(spec("c", { exec: `sh -c 'echo c >> ${trace}; exec sleep 100'`, after: ["b"] }));
    // b is running only once its line is written (its test), so c cannot overtake it
    sup.monitor(spec("b", { exec: `sh -c 'echo b >> ${trace}; exec sleep 100'`, test: `grep -q b ${trace}`, after: ["a"] }));
    expect(sup.status("b").state).toBe("blocked");
    sup.monitor(spec("a", { exec: `sh -c 'sleep 0.1; echo a >> ${trace}'`, oneshot: true }));
    await waitState("c", "running");
    await until(() => readFileSync(trace, "utf8").split("\n").length === 4, "three lines");
    expect(sup.status("a").state).toBe("success");
    expect(readFileSync(trace, "utf8")).toBe("a\nb\nc\n");
    expect(sup.startOrder()).toEqual(["a", "b", "c"]);
  });

  test("a dependent waits until the health check passes", async () => {
    const { dir, sup, spec, waitState } = setup();
    const flag = join(dir, "ready");
    sup.monitor(spec("db", { exec: "sleep 100", test: `test -f ${flag}` }));
    sup.monitor(spec("app", { exec: "sleep 100", after: ["db"] }));
    await waitState("db", "spawned");
    await Bun.sleep(150); // several failed checks
    expect(sup.status("db").state).toBe("spawned");
    expect(sup.status("app").state).toBe("blocked");
    writeFileSync(flag, "");
    await waitState("app", "running");
    expect(sup.status("db").state).toBe("running");
  });

  test("a check that keeps failing is reported as test-failure", async () => {
    const { sup, spec, waitState } = setup({ testIntervalMs: 5, testAttempts: 3 });
    sup.monitor(spec("sick", { exec: "sleep 100", test: "false" }));
    await waitState("sick", "test-failure");
    expect(sup.status("sick").lastError).toContain("test exited with 1");
    expect(sup.status("sick").pid).not.toBeNull();
  });

  test("a blocked service says what it waits for", () => {
    const { sup, spec } = setup();
    sup.monitor(spec("orphan", { exec: "sleep 100", after: ["nowhere"] }));
    expect(sup.status("orphan")).toMatchObject({ state: "blocked", lastError: "waiting for nowhere (not monitored: nowhere)" });
  });

  test("log: stdout sends lines to init's output as well as the ring", async () => {
    const lines: string[] = [];
    const { sup, spec, waitState } = setup({ stdoutSink: (name, line) => lines.push(`${name}: ${line}`) });
    sup.monitor(spec("loud", { exec: "sh -c 'echo one; echo two >&2'", oneshot: true, log: "stdout" }));
    await waitState("loud", "success");
    expect(lines.sort()).toEqual(["loud: one", "loud: two"]);
    expect(sup.logs("loud").tail().map((l) => l.line)).toContain("one");
  });

  test("a dependency cycle is reported, not deadlocked, and others still start", async () => {
    const { sup, spec, waitState } = setup();
    sup.monitor(spec("x", { exec: "sleep 100", after: ["y"] }));
    sup.monitor(spec("y", { exec: "sleep 100", after: ["x"] }));
    sup.monitor(spec("free", { exec: "sleep 100" }));
    await waitState("free", "running");
    expect(sup.status("x").state).toBe("blocked");
    expect(sup.status("x").lastError).toMatch(/dependency cycle: x -> y -> x/);
  });

  test("restarts with exponential backoff driven by the clock, reset after a stable run", async () => {
    const clock = new FakeClock();
    const { dir, sup, spec, waitState } = setup({ clock, backoff: { initialMs: 2000, factor: 1.5, maxMs: 5000, stableMs: 60_000 } });
    const go = join(dir, "go");
    // exits 1 as soon as `go` exists
    sup.monitor(spec("crashy", { exec: `sh -c 'while [ ! -f ${go} ]; do sleep 0.01; done; exit 1'` }));
    writeFileSync(go, "");
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      await waitState("crashy", "error");
      await until(() => clock.pending().length === 1, "restart timer");
      delays.push(clock.pending()[0]);
      expect(sup.status("crashy").nextStartInMs).toBe(delays[i]);
      clock.advance(delays[i]);
      await waitState("crashy", "running", "error");
      if (i < 4) await until(() => sup.status("crashy").restarts === i + 1, "restart count");
    }
    expect(delays).toEqual([2000, 3000, 4500, 5000, 5000]);

    // a run that lasts the stable period starts the sequence again
    const { rmSync } = await import("node:fs");
    await waitState("crashy", "error");
    rmSync(go);
    clock.advance(clock.pending()[0]);
    await waitState("crashy", "running");
    clock.advance(61_000);
    writeFileSync(go, "");
    await waitState("crashy", "error");
    await until(() => clock.pending().length === 1, "restart timer");
    expect(clock.pending()[0]).toBe(2000);
  });

  test("an explicit start cuts a pending backoff short", async () => {
    const clock = new FakeClock();
    const { dir, sup, spec, waitState } = setup({ clock });
    const ok = join(dir, "ok");
    sup.monitor(spec("flaky", { exec: `sh -c 'test -f ${ok} && exec sleep 1000; exit 1'` }));
    await waitState("flaky", "error");
    await until(() => clock.pending().length === 1, "restart timer");
    writeFileSync(ok, "");
    sup.start("flaky");
    await waitState("flaky", "running");
    expect(clock.pending()).toEqual([]);
  });

  test("a missing binary is a failure retried on backoff, not a tight loop", async () => {
    const clock = new FakeClock();
    const { sup, spec, waitState } = setup({ clock });
    sup.monitor(spec("ghost", { exec: "/nonexistent/binary --flag" }));
    await waitState("ghost", "failure");
    expect(sup.status("ghost").lastError).toContain("/nonexistent/binary");
    expect(clock.pending()).toEqual([2000]);
    clock.advance(2000);
    expect(sup.status("ghost").restarts).toBe(1);
    expect(clock.pending()).toEqual([3000]);
  });

  test("stop signals the whole process group and escalates to SIGKILL after the timeout", async () => {
    const { dir, sup, spec, waitState } = setup();
    const childPid = join(dir, "child.pid");
    sup.monitor(spec("group", { exec: `sh -c 'sleep 1000 & echo $! > ${childPid}; wait'` }));
    await until(() => existsSync(childPid) && readFileSync(childPid, "utf8").trim(), "child pid");
    const child = Number(readFileSync(childPid, "utf8"));
    const main = sup.status("group").pid!;
    expect(alive(child)).toBe(true);
    await sup.stop("group");
    expect(sup.status("group").state).toBe("stopped");
    await until(() => !alive(child) && !alive(main), "group to die");

    const trapped = join(dir, "trapped");
    sup.monitor(spec("stubborn", { exec: `sh -c 'trap "" TERM; touch ${trapped}; sleep 1000 & wait; sleep 1000'`, shutdown_timeout: 0.2 }));
    await until(() => existsSync(trapped), "trap installed");
    await sup.stop("stubborn");
    expect(sup.status("stubborn").lastExit?.signal).toBe("SIGKILL");
  });

  test("the stop signal from the service file is used", async () => {
    const { dir, sup, spec } = setup();
    const trapped = join(dir, "trapped");
    sup.monitor(spec("usr1", { exec: `sh -c 'trap "exit 42" USR1; touch ${trapped}; sleep 1000 & wait'`, signal: { stop: "SIGUSR1" } }));
    await until(() => existsSync(trapped), "trap installed");
    await sup.stop("usr1");
    expect(sup.status("usr1").lastExit).toMatchObject({ code: 42, signal: null });
  });

  test("kill sends a signal and the service is restarted", async () => {
    const clock = new FakeClock();
    const { sup, spec, waitState } = setup({ clock });
    sup.monitor(spec("k", { exec: "sleep 1000" }));
    await waitState("k", "running");
    sup.kill("k", "SIGKILL");
    await waitState("k", "error");
    expect(sup.status("k").lastExit?.signal).toBe("SIGKILL");
    clock.advance(2000);
    await waitState("k", "running");
  });

  test("captures output with timestamps in a bounded ring and streams new lines", async () => {
    const { sup, spec, waitState } = setup({ ringLines: 50 });
    const seen: string[] = [];
    sup.monitor(spec("chatty", { exec: `sh -c 'i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); done; echo oops >&2; sleep 1000'` }));
    const unsub = sup.logs("chatty").subscribe((l) => seen.push(l.line));
    await until(() => sup.logs("chatty").tail().some((l) => l.line === "oops"), "stderr line");
    unsub();
    await waitState("chatty", "running");
    const lines = sup.logs("chatty").tail();
    expect(lines).toHaveLength(50);
    expect(lines.at(-1)).toMatchObject({ stream: "stderr", line: "oops" });
    expect(lines.at(-2)).toMatchObject({ stream: "stdout", line: "line 199" });
    expect(lines.every((l) => l.ts > Date.now() - 60_000 && l.ts <= Date.now())).toBe(true);
    expect(seen).toContain("line 0");
    expect(seen.at(-1)).toBe("oops");
  });

  test("log ring stays within its line and byte bounds", () => {
    const ring = new LogRing(100, 1000, 50);
    for (let i = 0; i < 10_000; i++) ring.push("stdout", `${i}`.padEnd(30, "x"));
    expect(ring.size.lines).toBeLessThanOrEqual(100);
    expect(ring.size.bytes).toBeLessThanOrEqual(1000);
    expect(ring.tail(1)[0].line.startsWith("9999")).toBe(true);
    ring.push("stdout", "y".repeat(500));
    expect(ring.tail(1)[0].line.length).toBeLessThanOrEqual(51);
    expect(ring.tail(3).map((l) => l.line.slice(0, 4))).toEqual(["9998", "9999", "yyyy"]);
  });

  test("monitor and forget at run time", async () => {
    const { sup, spec, waitState } = setup();
    sup.monitor(spec("late", { exec: "sleep 1000" }));
    await waitState("late", "running");
    expect(() => sup.monitor(spec("late", { exec: "true" }))).toThrow(SupervisorError);
    try {
      sup.forget("late");
      throw new Error("forgot a running service");
    } catch (e) {
      expect((e as SupervisorError).code).toBe("running");
    }
    await sup.stop("late");
    sup.forget("late");
    expect(sup.has("late")).toBe(false);
    expect(() => sup.status("late")).toThrow(/no service named 'late'/);
    sup.monitor(spec("late", { exec: "sleep 1000" }));
    await waitState("late", "running");
  });

  test("shutdown stops dependents before their dependencies", async () => {
    const { dir, sup, spec, waitState } = setup();
    const trace = join(dir, "trace");
    const svc = (name: string, after: string[]) =>
      spec(name, { exec: `sh -c 'trap "echo ${name} >> ${trace}; exit 0" TERM; touch ${trace}.${name}; sleep 1000 & wait'`, after });
    sup.monitor(svc("base", []));
    sup.monitor(svc("mid", ["base"]));
    sup.monitor(svc("top", ["mid"]));
    await until(() => ["base", "mid", "top"].every((n) => existsSync(`${trace}.${n}`)), "traps installed");
    await sup.shutdown();
    expect(readFileSync(trace, "utf8")).toBe("top\nmid\nbase\n");
    for (const n of ["base", "mid", "top"]) expect(sup.status(n).state).toBe("stopped");
  });
});

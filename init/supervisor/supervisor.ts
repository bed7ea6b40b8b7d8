// The service supervisor: zinit's model (services with a target up/down, `after` dependencies,
// oneshots, health-check tests) with exponential restart backoff and process-group control.
//
// A service's life: blocked (dependencies not ready) -> spawned (process started, test not yet
// passed) -> running (test passed, or no test) ; on exit: success (oneshot exit 0), error (exited
// otherwise, restarted after a backoff delay), failure (could not be spawned, e.g. missing binary;
// retried on the same backoff), test-failure (the test kept failing; still retried). A service whose
// target is down and whose process is gone is `stopped`.
import { constants } from "node:os";
import { Backoff, defaultBackoff, type BackoffPolicy } from "./backoff.ts";
import { realClock, type Clock } from "./clock.ts";
import { LogRing, pumpLines } from "./log-ring.ts";
import type { ServiceSpec } from "./service-config.ts";
import { logger } from "../log.ts";

const log = logger("supervisor");

export type ServiceState = "blocked" | "spawned" | "running" | "success" | "error" | "test-failure" | "failure" | "stopped";
export type Target = "up" | "down";

export interface ExitInfo {
  code: number | null;
  signal: string | null;
  at: number;
}

export interface ServiceStatus {
  name: string;
  state: ServiceState;
  target: Target;
  pid: number | null;
  oneshot: boolean;
  after: string[];
  restarts: number;
  since: number;
  lastExit: ExitInfo | null;
  lastError: string | null;
  /** Milliseconds until the next start attempt, when one is scheduled. */
  nextStartInMs: number | null;
}

export type SupervisorErrorCode = "not-found" | "exists" | "running" | "invalid";
export class SupervisorError extends Error {
  constructor(readonly code: SupervisorErrorCode, message: string, readonly service?: string) {
    super(message);
    this.name = "SupervisorError";
  }
}

export interface SupervisorOptions {
  clock?: Clock;
  backoff?: BackoffPolicy;
  /** Delay between health-check attempts while a service is spawned. */
  testIntervalMs?: number;
  /** Failed attempts after which the state becomes test-failure (checks continue, more slowly). */
  testAttempts?: number;
  /** Where `log: stdout` lines go besides the ring; defaults to init's stdout. */
  stdoutSink?: (service: string, line: string) => void;
  ringLines?: number;
  ringBytes?: number;
}

interface Service {
  spec: ServiceSpec;
  target: Target;
  state: ServiceState;
  since: number;
  proc: ReturnType<typeof Bun.spawn> | null;
  startedAt: number;
  exited: Promise<void> | null;
  ring: LogRing;
  backoff: Backoff;
  restarts: number;
  lastExit: ExitInfo | null;
  lastError: string | null;
  /** Pending restart / health-check / kill timer (clock handle). */
  timer: unknown;
  timerAt: number | null;
  testRun: ReturnType<typeof Bun.spawn> | null;
  testFailures: number;
  /** Bumped on every spawn, so callbacks from an older run are ignored. */
  generation: number;
}

function signalNumber(sig: NodeJS.Signals | number): number {
  return typeof sig === "number" ? sig : constants.signals[sig];
}

function signalName(n: number | null): string | null {
  if (n === null) return null;
  return Object.entries(constants.signals).find(([, v]) => v === n)?.[0] ?? String(n);
}

export class Supervisor {
  private services = new Map<string, Service>();
  private listeners = new Set<(name: string, state: ServiceState) => void>();
  private readonly clock: Clock;
  private shuttingDown = false;

  constructor(private readonly opts: SupervisorOptions = {}) {
    this.clock = opts.clock ?? realClock;
  }

  /** Adds a service (target up) and starts it when its dependencies are ready. */
  monitor(spec: ServiceSpec): void {
    if (this.services.has(spec.name)) throw new SupervisorError("exists", `service '${spec.name}' is already monitored`, spec.name);
    if (this.shuttingDown) throw new SupervisorError("invalid", "the node is shutting down");
    const svc: Service = {
      spec, target: "up", state: "blocked", since: this.clock.now(), proc: null, startedAt: 0, exited: null,
      ring: new LogRing(this.opts.ringLines, this.opts.ringBytes), backoff: new Backoff(this.opts.backoff ?? defaultBackoff),
      restarts: 0, lastExit: null, lastError: null, timer: null, timerAt: null, testRun: null, testFailures: 0, generation: 0,
    };
    this.services.set(spec.name, svc);
    log.info(`monitoring ${spec.name}`);
    this.evaluate();
  }

  /** Removes a stopped service. */
  forget(name: string): void {
    const svc = this.get(name);
    if (svc.target === "up" || svc.proc) throw new SupervisorError("running", `service '${name}' is not stopped; stop it first`, name);
    this.clearTimer(svc);
    this.services.delete(name);
    log.info(`forgot ${name}`);
    this.evaluate();
  }

  start(name: string): void {
    const svc = this.get(name);
    if (this.shuttingDown) throw new SupervisorError("invalid", "the node is shutting down");
    if (svc.target === "up" && svc.proc) return;
    // also cuts a pending backoff short: an explicit start means now
    svc.target = "up";
    svc.backoff.reset();
    this.clearTimer(svc);
    this.evaluate();
  }

  /** Sets the target down, sends the stop signal to the process group, SIGKILL after shutdown_timeout. */
  async stop(name: string): Promise<void> {
    const svc = this.get(name);
    svc.target = "down";
    this.clearTimer(svc);
    this.killTest(svc);
    const proc = svc.proc;
    if (!proc) {
      this.setState(svc, "stopped");
      return;
    }
    this.signalGroup(svc, svc.spec.stopSignal);
    const gen = svc.generation;
    const killTimer = this.clock.setTimeout(() => {
      if (svc.generation === gen && svc.proc) {
        log.warn(`${name} did not stop within ${svc.spec.shutdownTimeoutMs} ms; sending SIGKILL`);
        this.signalGroup(svc, "SIGKILL");
      }
    }, svc.spec.shutdownTimeoutMs);
    try {
      await svc.exited;
    } finally {
      this.clock.clearTimeout(killTimer);
    }
  }

  async restart(name: string): Promise<void> {
    await this.stop(name);
    this.start(name);
  }

  /** Sends a signal to the service's process group; the usual exit handling follows if it dies. */
  kill(name: string, signal: NodeJS.Signals | number): void {
    const svc = this.get(name);
    if (!svc.proc) throw new SupervisorError("invalid", `service '${name}' has no running process`, name);
    this.signalGroup(svc, signal);
  }

  status(name: string): ServiceStatus {
    return this.statusOf(this.get(name));
  }

  list(): ServiceStatus[] {
    return [...this.services.values()].map((s) => this.statusOf(s)).sort((a, b) => a.name.localeCompare(b.name));
  }

  get size(): number {
    return this.services.size;
  }

  has(name: string): boolean {
    return this.services.has(name);
  }

  logs(name: string): LogRing {
    return this.get(name).ring;
  }

  /** Called with (service, new state) on every state change. Returns an unsubscribe function. */
  onStateChange(fn: (name: string, state: ServiceState) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Dependency order: every service after the ones it waits for; services in a cycle are kept in. */
  startOrder(): string[] {
    const order: string[] = [];
    const state = new Map<string, "visiting" | "done">();
    const visit = (n: string) => {
      if (state.get(n)) return;
      state.set(n, "visiting");
      for (const d of this.services.get(n)?.spec.after ?? []) if (this.services.has(d)) visit(d);
      state.set(n, "done");
      order.push(n);
    };
    for (const n of [...this.services.keys()].sort()) visit(n);
    return order;
  }

  /** Stops every service, dependents before what they depend on; independent ones in parallel. */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    const order = this.startOrder();
    const rank = new Map(order.map((n, i) => [n, i]));
    const stopping = new Map<string, Promise<void>>();
    const stopAfterDependents = (name: string): Promise<void> => {
      let p = stopping.get(name);
      if (p) return p;
      const dependents = order.filter((d) => (rank.get(d) ?? 0) > (rank.get(name) ?? 0) && this.services.get(d)?.spec.after.includes(name));
      p = Promise.all(dependents.map(stopAfterDependents)).then(() => this.stop(name).catch((e) => log.error(`stopping ${name}`, e)));
      stopping.set(name, p);
      return p;
    };
    await Promise.all(order.map(stopAfterDependents));
  }

  private get(name: string): Service {
    const svc = this.services.get(name);
    if (!svc) throw new SupervisorError("not-found", `no service named '${name}'`, name);
    return svc;
  }

  private statusOf(s: Service): ServiceStatus {
    return {
      name: s.spec.name, state: s.state, target: s.target, pid: s.proc?.pid ?? null, oneshot: s.spec.oneshot,
      after: s.spec.after, restarts: s.restarts, since: s.since, lastExit: s.lastExit, lastError: s.lastError,
      nextStartInMs: s.timerAt !== null && !s.proc ? Math.max(0, s.timerAt - this.clock.now()) : null,
    };
  }

  private setState(svc: Service, state: ServiceState): void {
    if (svc.state === state) return;
    svc.state = state;
    svc.since = this.clock.now();
    log.debug(`${svc.spec.name} -> ${state}`);
    for (const fn of this.listeners) {
      try {
        fn(svc.spec.name, state);
      } catch (e) {
        log.error("state listener failed", e);
      }
    }
  }

  private clearTimer(svc: Service): void {
    if (svc.timer !== null) this.clock.clearTimeout(svc.timer);
    svc.timer = null;
    svc.timerAt = null;
  }

  private setTimer(svc: Service, ms: number, fn: () => void): void {
    this.clearTimer(svc);
    svc.timerAt = this.clock.now() + ms;
    svc.timer = this.clock.setTimeout(() => {
      svc.timer = null;
      svc.timerAt = null;
      fn();
    }, ms);
  }

  private ready(dep: Service | undefined): boolean {
    if (!dep) return false;
    return dep.spec.oneshot ? dep.state === "success" : dep.state === "running";
  }

  /** Names of services on a dependency cycle through `name`, or null. */
  private cycleThrough(name: string): string[] | null {
    const path: string[] = [];
    const seen = new Set<string>();
    const walk = (n: string): boolean => {
      if (n === name && path.length > 0) return true;
      if (seen.has(n)) return false;
      seen.add(n);
      path.push(n);
      for (const d of this.services.get(n)?.spec.after ?? []) if (walk(d)) return true;
      path.pop();
      return false;
    };
    return walk(name) ? [...path, name] : null;
  }

  /** Starts every service whose target is up, that is idle and not waiting out a backoff, and whose dependencies are ready. */
  private evaluate(): void {
    if (this.shuttingDown) return;
    for (const svc of this.services.values()) {
      if (svc.target !== "up" || svc.proc || svc.timer !== null) continue;
      if (svc.spec.oneshot && svc.state === "success") continue;
      const missing = svc.spec.after.filter((d) => !this.ready(this.services.get(d)));
      if (missing.length === 0) {
        this.spawn(svc);
        continue;
      }
      const cycle = this.cycleThrough(svc.spec.name);
      if (cycle) {
        const why = `dependency cycle: ${cycle.join(" -> ")}`;
        if (svc.lastError !== why) log.error(`${svc.spec.name}: ${why}`);
        svc.lastError = why;
      } else {
        const unknown = missing.filter((d) => !this.services.has(d));
        svc.lastError = `waiting for ${missing.join(", ")}${unknown.length ? ` (not monitored: ${unknown.join(", ")})` : ""}`;
      }
      this.setState(svc, "blocked");
    }
  }

  private spawn(svc: Service): void {
    const spec = svc.spec;
    svc.generation++;
    const gen = svc.generation;
    const piped = spec.log === "null" ? "ignore" : "pipe";
    let proc: ReturnType<typeof Bun.spawn>;
    try {
      proc = Bun.spawn(spec.exec, {
        cwd: spec.dir ?? undefined,
        env: { ...process.env, ...spec.env },
        stdin: "ignore",
        stdout: piped,
        stderr: piped,
        detached: true, // setsid: the service leads its own process group, so stop reaches all of it
      });
    } catch (e) {
      svc.lastError = `cannot spawn ${spec.exec[0]}: ${(e as Error).message}`;
      svc.lastExit = null;
      log.error(`${spec.name}: ${svc.lastError}`);
      this.setState(svc, "failure");
      this.scheduleRestart(svc, 0);
      return;
    }
    svc.proc = proc;
    svc.startedAt = this.clock.now();
    svc.testFailures = 0;
    if (svc.restarts > 0 || svc.lastExit) svc.ring.push("stderr", `[zos] ${spec.name} started (pid ${proc.pid})`);
    this.setState(svc, "spawned");

    const pumps: Promise<void>[] = [];
    for (const stream of ["stdout", "stderr"] as const) {
      const s = proc[stream];
      if (s instanceof ReadableStream) {
        pumps.push(
          pumpLines(s, (line) => {
            svc.ring.push(stream, line);
            if (spec.log === "stdout") (this.opts.stdoutSink ?? ((n, l) => process.stdout.write(`[${n}] ${l}\n`)))(spec.name, line);
          }).catch(() => {}),
        );
      }
    }

    svc.exited = proc.exited.then(async (code) => {
      await Promise.all(pumps);
      if (svc.generation !== gen) return;
      this.onExit(svc, code, proc.signalCode ? signalNumber(proc.signalCode as NodeJS.Signals) : null);
    });

    if (spec.oneshot) return;
    if (spec.test) this.runTest(svc, gen);
    else {
      this.setState(svc, "running");
      this.evaluate();
    }
  }

  private runTest(svc: Service, gen: number): void {
    const spec = svc.spec;
    if (!spec.test || svc.generation !== gen || !svc.proc) return;
    let test: ReturnType<typeof Bun.spawn>;
    try {
      test = Bun.spawn(spec.test, { cwd: spec.dir ?? undefined, env: { ...process.env, ...spec.env }, stdin: "ignore", stdout: "ignore", stderr: "ignore", detached: true });
    } catch (e) {
      this.testFailed(svc, gen, `cannot spawn test ${spec.test[0]}: ${(e as Error).message}`);
      return;
    }
    svc.testRun = test;
    test.exited.then((code) => {
      if (svc.testRun === test) svc.testRun = null;
      if (svc.generation !== gen || !svc.proc || svc.target !== "up") return;
      if (code === 0) {
        svc.lastError = null;
        this.setState(svc, "running");
        this.evaluate();
      } else this.testFailed(svc, gen, `test exited with ${code ?? test.signalCode}`);
    });
  }

  private testFailed(svc: Service, gen: number, why: string): void {
    svc.testFailures++;
    const interval = this.opts.testIntervalMs ?? 1000;
    if (svc.testFailures >= (this.opts.testAttempts ?? 30)) {
      svc.lastError = why;
      this.setState(svc, "test-failure");
    }
    const delay = svc.state === "test-failure" ? interval * 5 : interval;
    this.setTimer(svc, delay, () => this.runTest(svc, gen));
  }

  private killTest(svc: Service): void {
    if (svc.testRun) {
      try {
        process.kill(-svc.testRun.pid, "SIGKILL");
      } catch {
        // already gone
      }
      svc.testRun = null;
    }
  }

  private onExit(svc: Service, code: number | null, signal: number | null): void {
    const ranMs = this.clock.now() - svc.startedAt;
    // leftovers in the group (a shell's background children) must not outlive their service
    this.signalGroup(svc, "SIGKILL", true);
    this.killTest(svc);
    this.clearTimer(svc);
    svc.proc = null;
    svc.exited = null;
    svc.lastExit = { code: signal === null ? code : null, signal: signalName(signal), at: this.clock.now() };
    const how = signal !== null ? `killed by ${signalName(signal)}` : `exited with ${code}`;
    svc.ring.push("stderr", `[zos] ${svc.spec.name} ${how}`);
    if (svc.target === "down") {
      this.setState(svc, "stopped");
      this.evaluate();
      return;
    }
    if (svc.spec.oneshot && code === 0 && signal === null) {
      svc.lastError = null;
      this.setState(svc, "success");
      this.evaluate();
      return;
    }
    svc.lastError = `${svc.spec.oneshot ? "oneshot" : "service"} ${how}`;
    log.warn(`${svc.spec.name} ${how}`);
    this.setState(svc, "error");
    this.scheduleRestart(svc, ranMs);
    // dependents of a service that went down are not stopped (zinit semantics), but new ones wait
    this.evaluate();
  }

  private scheduleRestart(svc: Service, ranMs: number): void {
    if (svc.target !== "up" || this.shuttingDown) return;
    const delay = svc.backoff.next(ranMs);
    log.info(`${svc.spec.name}: restarting in ${delay} ms`);
    this.setTimer(svc, delay, () => {
      svc.restarts++;
      this.evaluate();
    });
  }

  private signalGroup(svc: Service, signal: NodeJS.Signals | number, quiet = false): void {
    const pid = svc.proc?.pid;
    if (!pid) return;
    try {
      process.kill(-pid, signalNumber(signal));
    } catch (e) {
      // ESRCH: the group is already empty
      if (!quiet && (e as NodeJS.ErrnoException).code !== "ESRCH") log.warn(`signal ${String(signal)} to ${svc.spec.name}`, e);
    }
  }
}

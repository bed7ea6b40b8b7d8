import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadServiceDir, parseServiceYaml, ServiceConfigError } from "../../init/supervisor/service-config.ts";
import { shellSplit, ShellSplitError } from "../../init/supervisor/shell-split.ts";
import { tempDir } from "./helpers.ts";

describe("shellSplit", () => {
  test("splits words with quotes and escapes like a POSIX shell", () => {
    expect(shellSplit(`/bin/echo  a 'b c' "d \\"e\\"" f\\ g ''`)).toEqual(["/bin/echo", "a", "b c", 'd "e"', "f g", ""]);
    expect(shellSplit(`x"y"'z'`)).toEqual(["xyz"]);
  });
  test("rejects unterminated quotes", () => {
    expect(() => shellSplit(`a 'b`)).toThrow(ShellSplitError);
    expect(() => shellSplit(`a "b`)).toThrow(ShellSplitError);
  });
});

describe("service files", () => {
  test("parses every zinit key", () => {
    const spec = parseServiceYaml("web", `
exec: "/bin/sh -c 'echo hi'"
test: "true"
oneshot: false
after: [net, disk]
signal: { stop: SIGINT }
log: stdout
env: { A: 1, B: two }
dir: /tmp
shutdown_timeout: 2.5
`, "web.yaml");
    expect(spec).toEqual({
      name: "web", exec: ["/bin/sh", "-c", "echo hi"], test: ["true"], oneshot: false, after: ["net", "disk"],
      stopSignal: "SIGINT", log: "stdout", env: { A: "1", B: "two" }, dir: "/tmp", shutdownTimeoutMs: 2500,
    });
  });
  test("defaults match zinit", () => {
    const spec = parseServiceYaml("s", "exec: sleep 1", "s.yaml");
    expect(spec).toMatchObject({ test: null, oneshot: false, after: [], stopSignal: "SIGTERM", log: "ring", shutdownTimeoutMs: 10000 });
  });
  const bad: [string, string, string | null][] = [
    ["exec: [1]", "exec", "string"],
    ["exec: x\ntest: true", "test", "string"],
    ["exec: x\noneshot: 'yes'", "oneshot", "true or false"],
    ["exec: x\nafter: [1]", "after", null],
    ["exec: x\nsignal: { stop: SIGNOPE }", "signal.stop", "unknown signal"],
    ["exec: x\nlog: file", "log", null],
    ["exec: x\nenv: { 1A: x }", "env.1A", null],
    ["exec: x\nshutdown_timeout: -1", "shutdown_timeout", null],
    ["exec: x\nrestart: always", "restart", "unknown key"],
    ["oneshot: true", "exec", "required"],
    ["exec: \"a 'b\"", "exec", "unterminated"],
  ];
  for (const [yaml, key, words] of bad) {
    test(`rejects bad ${key}`, () => {
      try {
        parseServiceYaml("svc", yaml, "/etc/zos/svc.yaml");
        throw new Error("accepted");
      } catch (e) {
        expect(e).toBeInstanceOf(ServiceConfigError);
        const err = e as ServiceConfigError;
        expect(err.file).toBe("/etc/zos/svc.yaml");
        expect(err.key).toBe(key);
        expect(err.message).toContain("/etc/zos/svc.yaml");
        if (words) expect(err.message).toContain(words);
      }
    });
  }
  test("a config dir loads the good files and reports the bad ones", () => {
    const d = tempDir();
    try {
      writeFileSync(join(d.path, "good.yaml"), "exec: sleep 5\n");
      writeFileSync(join(d.path, "broken.yaml"), "exec: [unclosed\n");
      writeFileSync(join(d.path, "notes.txt"), "ignored");
      const { specs, errors } = loadServiceDir(d.path);
      expect(specs.map((s) => s.name)).toEqual(["good"]);
      expect(errors).toHaveLength(1);
      expect(errors[0].message).toContain("broken.yaml");
      expect(errors[0].message).toContain("invalid YAML");
    } finally {
      d.cleanup();
    }
  });
});

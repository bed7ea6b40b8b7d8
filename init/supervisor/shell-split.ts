// POSIX-shell-style word splitting for zinit's `exec`/`test` strings: whitespace separates words,
// '...' is literal, "..." allows \" \\ \$ \` escapes, a bare backslash escapes the next character.
// No expansion of variables or globs happens: the words go straight to execve.
export class ShellSplitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ShellSplitError";
  }
}

export function shellSplit(input: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let i = 0;
  while (i < input.length) {
    const ch = input[i];
    if (ch === " " || ch === "\t" || ch === "\n") {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
      i++;
    } else if (ch === "'") {
      const end = input.indexOf("'", i + 1);
      if (end < 0) throw new ShellSplitError(`unterminated single quote at offset ${i}`);
      word += input.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (ch === '"') {
      i++;
      inWord = true;
      for (;;) {
        if (i >= input.length) throw new ShellSplitError("unterminated double quote");
        const c = input[i];
        if (c === '"') break;
        if (c === "\\" && i + 1 < input.length && '"\\$`\n'.includes(input[i + 1])) {
          word += input[i + 1];
          i += 2;
        } else {
          word += c;
          i++;
        }
      }
      i++;
    } else if (ch === "\\") {
      if (i + 1 >= input.length) throw new ShellSplitError("trailing backslash");
      if (input[i + 1] !== "\n") word += input[i + 1];
      inWord = true;
      i += 2;
    } else {
      word += ch;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}

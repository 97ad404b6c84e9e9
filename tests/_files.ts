// The repository's own files, for the tests that read the sources (layout,
// doc examples, README).

/** The repository root. */
export const ROOT: URL = new URL("..", import.meta.url);

/**
 * The files under `paths` (folders searched in depth; a path that is a file
 * is kept as given) whose names match `name`, relative to the root, sorted.
 */
export async function filesUnder(
  paths: readonly string[],
  name: RegExp,
): Promise<string[]> {
  const files: string[] = [];
  const walk = async (path: string): Promise<void> => {
    if ((await Deno.stat(new URL(path, ROOT))).isFile) {
      files.push(path);
      return;
    }
    for await (const entry of Deno.readDir(new URL(`${path}/`, ROOT))) {
      const sub = `${path}/${entry.name}`;
      if (entry.isDirectory) await walk(sub);
      else if (entry.isFile && name.test(entry.name)) files.push(sub);
    }
  };
  for (const path of paths) await walk(path);
  return files.sort();
}

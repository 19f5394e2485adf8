/**
 * Cleanup is a stack of release steps taken as things are opened: a start that fails part way,
 * and a shutdown, both run the same stack, newest first, each step once. A step's failure is
 * reported and the next steps still run.
 */
export class Cleanup {
  private steps: { what: string; run: () => unknown }[] = [];

  /** add pushes a step; `what` names it when it fails. */
  add(what: string, run: () => unknown): void {
    this.steps.push({ what, run });
  }

  /** run takes every step, newest first, and empties the stack. */
  async run(onError: (what: string, err: unknown) => void = () => undefined): Promise<void> {
    const steps = this.steps;
    this.steps = [];
    for (let i = steps.length - 1; i >= 0; i--) {
      const s = steps[i] as { what: string; run: () => unknown };
      try {
        await s.run();
      } catch (err) {
        onError(s.what, err);
      }
    }
  }
}

// Undo / redo for the editor: a list of snapshots (strings) and a cursor. Pure, so node can test it.

export class EditHistory {
  /** `initial` is the state before any edit; at most `limit` snapshots are kept (the oldest go). */
  constructor(initial, limit = 200) {
    this.stack = [initial];
    this.at = 0;
    this.limit = limit;
  }

  get current() {
    return this.stack[this.at];
  }

  /** Record a new state; false when it equals the current one. Drops whatever had been undone. */
  push(snapshot) {
    if (snapshot === this.current) return false;
    this.stack.splice(this.at + 1);
    this.stack.push(snapshot);
    if (this.stack.length > this.limit) this.stack.shift();
    this.at = this.stack.length - 1;
    return true;
  }

  canUndo() {
    return this.at > 0;
  }

  canRedo() {
    return this.at < this.stack.length - 1;
  }

  /** The state before the current one (null when there is none); it becomes the current one. */
  undo() {
    return this.canUndo() ? this.stack[--this.at] : null;
  }

  redo() {
    return this.canRedo() ? this.stack[++this.at] : null;
  }
}

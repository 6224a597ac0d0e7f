// Runs the browser's reducer in node for the tests: reads {view, viewer, audience, events} as
// JSON on stdin (view null: start from nothing), folds the events, prints the resulting view
// (bounded, as the replay's state?t= and a join snapshot are, unless `full` is set).
import { apply, empty, fromView, view } from "../src/reducer";

const chunks: Buffer[] = [];
process.stdin.on("data", (c) => chunks.push(c));
process.stdin.on("end", () => {
  const input = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const state = input.view
    ? fromView(input.view, input.viewer)
    : empty(input.id, input.title, input.recording);
  for (const e of input.events) apply(state, e);
  process.stdout.write(JSON.stringify(view(state, input.audience, input.viewer, !input.full)));
});

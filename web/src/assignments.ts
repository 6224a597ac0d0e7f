// What the replay page (an assignee's own card) and the report page (the trainer's list) both
// show of an assignee's progress: the server's status record (docs/protocol.md, assignments).

export type AssignmentStatus = "not_started" | "in_progress" | "completed" | "overdue";

/** One assignee's progress, as `GET …/assignments` and `GET …/assignment` give it. */
export interface AssigneeProgress {
  status: AssignmentStatus;
  watched_share: number;
  quiz_answered: number;
  quiz_total: number;
  completed_at: string | null;
  late: boolean;
}

export const STATUS_TEXT: Record<AssignmentStatus, string> = {
  not_started: "Not started",
  in_progress: "In progress",
  completed: "Completed",
  overdue: "Overdue",
};

package engine

// SpareResumes counts the resumes queued for a blocked task: one is taken
// by the next block of the task, which then resumes at once.
func (t *Task) SpareResumes() int { return len(t.resumeBlocked) }

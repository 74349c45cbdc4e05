package httpapi

import "strings"

// groupsReady reports whether every group's origin can serve (group.Group.Ready: a loader
// that connects in the background, such as SQL with its database down at start, says not
// yet, and why). /readyz answers 503 with the reasons until they all can, so that a load
// balancer keeps traffic away from a node whose origin is unreachable; the node itself
// serves all the same (what it has cached, and loads that may succeed).
func (a *API) groupsReady() (bool, string) {
	var reasons []string
	for _, g := range a.order {
		if err := g.Ready(); err != nil {
			reasons = append(reasons, err.Error())
		}
	}
	if len(reasons) > 0 {
		return false, strings.Join(reasons, "; ")
	}
	return true, ""
}

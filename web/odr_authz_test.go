package web

// odrRefusals classifies the routes of odr_api.go and stats_api.go for
// TestEveryRouteRefuses (authz_test.go). In its world, enterprise E is
// enrolled by the platform with no supervising institution, and case A,
// a complaint against E at district A, is mediating: it has no
// reconciliation.
func (w *world) odrRefusals(route string) ([]refusal, bool) {
	parties := refusal{[]string{"partyA", "medPartA", "respA"}, []int{401}}
	otherCase := refusal{[]string{"partyB", "medPartB", "respB", "medB", "adminB", "agentF", "medA1"}, []int{401, 404}}
	notAdmins := refusal{[]string{"medA", "medA1", "medB", "agentE", "agentF"}, []int{403}}
	notE := refusal{[]string{"adminA", "adminB", "medA", "medB", "medA1", "agentF"}, []int{404}}
	switch route {
	case "POST /api/v1/odr/enterprises":
		// An empty body names no institution of the admins' scope.
		return []refusal{parties, notAdmins, {[]string{"adminA", "adminB"}, []int{403}}}, true
	case "GET /api/v1/odr/enterprises":
		return []refusal{parties}, true // the list is confined to the caller's scope
	case "GET /api/v1/odr/enterprises/{creditCode}",
		"GET /api/v1/odr/enterprises/{creditCode}/inbox",
		"GET /api/v1/odr/enterprises/{creditCode}/dashboard":
		return []refusal{parties, notE}, true
	case "POST /api/v1/odr/enterprises/{creditCode}/review":
		return []refusal{parties, notE, {[]string{"agentE"}, []int{403}}}, true
	case "GET /api/v1/odr/cases/{id}":
		return []refusal{otherCase}, true
	case "POST /api/v1/odr/cases/{id}/actions":
		return []refusal{otherCase, parties, {[]string{"adminA", "medA"}, []int{403}}}, true
	case "POST /api/v1/odr/cases/{id}/answer":
		// The applicant's join token only; the respondent is forbidden.
		return []refusal{otherCase, {[]string{"operator", "platform", "adminA", "medA", "agentE"}, []int{401}},
			{[]string{"respA", "medPartA"}, []int{403}}}, true
	case "GET /api/v1/odr/routes", "GET /api/v1/stats", "GET /api/v1/stats/warnings":
		return []refusal{parties, notAdmins}, true
	case "PUT /api/v1/odr/routes/{id}":
		return []refusal{parties, notAdmins, {[]string{"adminA", "adminB"}, []int{403}}}, true
	case "DELETE /api/v1/odr/routes/{id}":
		// No such route: everyone is told so.
		return []refusal{parties, {[]string{"medA", "agentE", "adminB"}, []int{403, 404}}}, true
	case "POST /api/v1/queue/requests":
		// An empty body names no case: not found for anyone.
		return []refusal{{[]string{"partyA", "medA", "agentE"}, []int{404}}}, true
	case "GET /api/v1/queue/requests":
		return []refusal{parties, {[]string{"agentE", "agentF"}, []int{403}}}, true
	case "GET /api/v1/queue/requests/{id}", "DELETE /api/v1/queue/requests/{id}":
		return []refusal{{[]string{"partyA", "adminB", "agentF"}, []int{404}}}, true
	case "POST /api/v1/queue/requests/{id}/accept", "POST /api/v1/queue/requests/{id}/pass",
		"PUT /api/v1/queue/mediators/{id}/presence", "GET /api/v1/queue/mediators/{id}":
		return []refusal{parties, {[]string{"medA", "adminB", "agentE"}, []int{404}}}, true
	case "DELETE /api/v1/shifts/{id}":
		return []refusal{parties, {[]string{"medA", "adminB", "agentE"}, []int{404}}}, true
	case "POST /api/v1/odr/sweep":
		return []refusal{parties, notAdmins, {[]string{"adminA", "adminB"}, []int{403}}}, true
	}
	return nil, false
}

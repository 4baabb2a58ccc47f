package web

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/nodus-os/nodus/internal/egress"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
)

// The egress page shows a tenant's policy (its mode and its own rules)
// with the platform's rules that apply too, and replaces the mode and
// rules at once, as the API's PUT does.

// blankRules is how many empty rows the form offers for new rules: no
// script is needed to add one, and saving offers as many again.
const blankRules = 3

type egressPage struct {
	pageBase
	Policy  *egress.View
	Mode    egress.Mode
	Rules   []ruleRow // the tenant's rules as the form holds them, blank rows last
	CanEdit bool
	Error   *formError
}

type ruleForm struct{ Host, Port, PathPrefix, Comment string }

// ruleRow is a rule's row of the form, numbered from 1 as its errors are.
type ruleRow struct {
	ruleForm
	N int
}

func (s *Server) egressTenant(v *viewer) (string, error) {
	if s.deps.Egress == nil {
		return "", &nodus.Error{Code: nodus.EUNAVAILABLE, Message: "Egress policies are not available on this server"}
	}
	if v.tenantID() == "" {
		return "", errPickTenant
	}
	return v.tenantID(), nil
}

func (s *Server) handleEgress() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.egressPage(w, r, http.StatusOK, nil, "", nil)
	})
}

// egressPage renders the policy; rules and mode, when given, are what the
// failed form held, shown again with its error.
func (s *Server) egressPage(w http.ResponseWriter, r *http.Request, status int, rules []ruleForm, mode egress.Mode, ferr *formError) {
	v := viewerFrom(r.Context())
	tenantID, err := s.egressTenant(v)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	pol, err := s.deps.Egress.Policy(r.Context(), tenantID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p := egressPage{pageBase: s.base(r, v, "Egress"), Policy: pol, Mode: pol.Mode, Error: ferr,
		CanEdit: s.perms.Allows(v.user.Role, identity.ActionManageEgress)}
	if rules == nil {
		for _, rl := range pol.Rules {
			f := ruleForm{Host: rl.Host, PathPrefix: rl.PathPrefix, Comment: rl.Comment}
			if rl.Port != 0 {
				f.Port = strconv.Itoa(rl.Port)
			}
			rules = append(rules, f)
		}
		rules = append(rules, make([]ruleForm, blankRules)...)
	} else {
		p.Mode = mode
	}
	for i, f := range rules {
		p.Rules = append(p.Rules, ruleRow{ruleForm: f, N: i + 1})
	}
	s.render(w, r, status, "admin_egress", &p)
}

func (s *Server) handleSaveEgress() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		tenantID, err := s.egressTenant(v)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		_ = r.ParseForm() // checkForm parsed it already; errors were answered there
		mode := egress.Mode(r.PostFormValue("mode"))
		hosts, ports, paths, comments := r.PostForm["host"], r.PostForm["port"], r.PostForm["path_prefix"], r.PostForm["comment"]
		at := func(xs []string, i int) string {
			if i < len(xs) {
				return strings.TrimSpace(xs[i])
			}
			return ""
		}
		var forms []ruleForm
		var in []egress.RuleInput
		fields := map[string]string{}
		for i := range hosts {
			f := ruleForm{Host: at(hosts, i), Port: at(ports, i), PathPrefix: at(paths, i), Comment: at(comments, i)}
			if f == (ruleForm{}) {
				continue // a blank row, or a rule emptied to remove it
			}
			forms = append(forms, f)
			rule := egress.RuleInput{Host: f.Host, PathPrefix: f.PathPrefix, Comment: f.Comment}
			if f.Port != "" {
				n, err := strconv.Atoi(f.Port)
				if err != nil {
					fields["rules["+strconv.Itoa(len(in))+"].port"] = "must be a number, or empty for the scheme's default"
				}
				rule.Port = n
			}
			in = append(in, rule)
		}
		if len(fields) > 0 {
			err = &nodus.Error{Code: nodus.EINVALID, Message: "Check the rules", Fields: fields}
		} else {
			_, err = s.deps.Egress.UpdatePolicy(r.Context(), tenantID, mode, in, v.entry())
		}
		if err != nil {
			if statusOf(nodus.ErrorCode(err)) >= 500 {
				s.fail(w, r, err)
				return
			}
			s.egressPage(w, r, statusOf(nodus.ErrorCode(err)), append(forms, make([]ruleForm, blankRules)...), mode, ruleErrors(err))
			return
		}
		http.Redirect(w, r, "/egress?saved=1", http.StatusSeeOther)
	})
}

// ruleIndex matches the service's name of a rule's field, rules[i].host.
var ruleIndex = regexp.MustCompile(`^rules\[(\d+)\]\.?(.*)$`)

// ruleErrors names a rule's fields as the form numbers its rows, from 1:
// "rule 2: host" rather than the API's rules[1].host.
func ruleErrors(err error) *formError {
	ferr := toFormError(err)
	fields := map[string]string{}
	for k, msg := range ferr.Fields {
		if m := ruleIndex.FindStringSubmatch(k); m != nil {
			n, _ := strconv.Atoi(m[1])
			k = "rule " + strconv.Itoa(n+1)
			if m[2] != "" {
				k += ": " + strings.ReplaceAll(m[2], "_", " ")
			}
		}
		fields[k] = msg
	}
	ferr.Fields = fields
	return ferr
}

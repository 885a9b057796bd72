package main

import (
	"encoding/json"
	"fmt"
	"strings"
)

// DockerfileSpec is what the final stage of a Dockerfile gives the image: the
// files it copies in (destinations), its user, entrypoint and labels.
type DockerfileSpec struct {
	Base       string
	Copies     []string
	User       string
	Entrypoint []string
	Labels     map[string]string
}

// ParseDockerfile reads the final stage of a Dockerfile: FROM, COPY
// (destination only), USER, ENTRYPOINT (exec form) and LABEL; line
// continuations are joined. Other instructions of the final stage are an
// error, so a Dockerfile change the lab's image does not follow fails the
// build instead of being ignored.
func ParseDockerfile(src string) (DockerfileSpec, error) {
	var lines []string
	cur := ""
	for _, l := range strings.Split(src, "\n") {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if strings.HasSuffix(t, "\\") {
			cur += strings.TrimSuffix(t, "\\") + " "
			continue
		}
		lines = append(lines, cur+t)
		cur = ""
	}
	last := -1
	for i, l := range lines {
		if instr, _, _ := strings.Cut(l, " "); strings.EqualFold(instr, "FROM") {
			last = i
		}
	}
	if last < 0 {
		return DockerfileSpec{}, fmt.Errorf("no FROM")
	}
	spec := DockerfileSpec{Labels: map[string]string{}}
	for _, l := range lines[last:] {
		instr, rest, _ := strings.Cut(l, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM":
			f := strings.Fields(rest)
			spec.Base = f[len(f)-1]
			if len(f) >= 3 && strings.EqualFold(f[len(f)-2], "AS") {
				spec.Base = f[len(f)-3]
			}
		case "ARG":
		case "COPY":
			f := strings.Fields(rest)
			spec.Copies = append(spec.Copies, f[len(f)-1])
		case "USER":
			spec.User = rest
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &spec.Entrypoint); err != nil {
				return spec, fmt.Errorf("ENTRYPOINT %s: want the exec form: %w", rest, err)
			}
		case "LABEL":
			for rest != "" {
				k, after, ok := strings.Cut(rest, "=")
				if !ok {
					return spec, fmt.Errorf("LABEL %q: want key=\"value\"", rest)
				}
				after = strings.TrimSpace(after)
				if !strings.HasPrefix(after, `"`) {
					return spec, fmt.Errorf("LABEL %s: want a quoted value", k)
				}
				end := strings.Index(after[1:], `"`)
				if end < 0 {
					return spec, fmt.Errorf("LABEL %s: unterminated value", k)
				}
				spec.Labels[strings.TrimSpace(k)] = after[1 : end+1]
				rest = strings.TrimSpace(after[end+2:])
			}
		default:
			return spec, fmt.Errorf("final stage: instruction %s is not followed by the lab's image builder", instr)
		}
	}
	return spec, nil
}

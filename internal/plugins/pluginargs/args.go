// Package pluginargs decodes and checks the typed arguments of ning's plugins.
package pluginargs

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Args is a plugin's argument type.
type Args interface {
	SetDefaults()
	Validate(path *field.Path) field.ErrorList
}

// Decode reads a plugin's arguments from its pluginConfig entry (nil means
// none), strictly: an unknown field (a misspelt siteLable, say) or a field
// given twice is an error naming the field's path. It then applies defaults
// and validates. The error names the plugin and every invalid field.
func Decode(plugin string, obj runtime.Object, into Args) error {
	path := field.NewPath("pluginConfig", plugin, "args")
	if obj != nil {
		if err := decodeStrict(obj, into, path); err != nil {
			return fmt.Errorf("%s args: %w", plugin, err)
		}
	}
	into.SetDefaults()
	if errs := into.Validate(path); len(errs) > 0 {
		return fmt.Errorf("%s args: %w", plugin, errs.ToAggregate())
	}
	return nil
}

// decodeStrict is frameworkruntime.DecodeInto without its leniency: the
// scheduler hands an out-of-tree plugin its args as raw JSON (or YAML).
func decodeStrict(obj runtime.Object, into any, path *field.Path) error {
	u, ok := obj.(*runtime.Unknown)
	if !ok {
		return fmt.Errorf("want args of type runtime.Unknown, got %T", obj)
	}
	if u.Raw == nil {
		return nil
	}
	data := u.Raw
	switch u.ContentType {
	case runtime.ContentTypeJSON, "":
	case runtime.ContentTypeYAML:
		var err error
		if data, err = yaml.YAMLToJSONStrict(u.Raw); err != nil {
			return err
		}
	default:
		return fmt.Errorf("args have content type %q: want %s or %s", u.ContentType, runtime.ContentTypeJSON, runtime.ContentTypeYAML)
	}
	strict, err := sigsjson.UnmarshalStrict(data, into, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	var errs field.ErrorList
	for _, e := range strict {
		var fe sigsjson.FieldError
		if !errors.As(e, &fe) {
			errs = append(errs, field.InternalError(path, e))
			continue
		}
		p := path.Child(strings.Split(fe.FieldPath(), ".")[0], strings.Split(fe.FieldPath(), ".")[1:]...)
		if strings.HasPrefix(e.Error(), "duplicate field") {
			errs = append(errs, field.Duplicate(p, nil))
		} else {
			errs = append(errs, field.Forbidden(p, "unknown field"))
		}
	}
	return errs.ToAggregate()
}

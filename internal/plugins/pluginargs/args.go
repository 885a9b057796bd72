// Package pluginargs decodes and checks the typed arguments of ning's plugins.
package pluginargs

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
)

// Args is a plugin's argument type.
type Args interface {
	SetDefaults()
	Validate(path *field.Path) field.ErrorList
}

// Decode reads a plugin's arguments from its pluginConfig entry (nil means
// none), applies defaults and validates them. The error names the plugin and
// every invalid field.
func Decode(plugin string, obj runtime.Object, into Args) error {
	if obj != nil {
		if err := frameworkruntime.DecodeInto(obj, into); err != nil {
			return fmt.Errorf("%s args: %w", plugin, err)
		}
	}
	into.SetDefaults()
	if errs := into.Validate(field.NewPath("pluginConfig", plugin, "args")); len(errs) > 0 {
		return fmt.Errorf("%s args: %w", plugin, errs.ToAggregate())
	}
	return nil
}

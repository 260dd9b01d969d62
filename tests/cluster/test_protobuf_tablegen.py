"""The table generator reads the facts the codec needs from Go struct tags (checked on a small
Go package written here; the real table comes from k8s.io/api and k8s.io/apimachinery)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kaito.cluster._protobuf._tablegen import generate

WIDGETS = """
package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

type Mode string

type Aliases []string

// Widget is a test kind.
type Widget struct {
	metav1.TypeMeta `json:",inline"`
	// Standard object's metadata.
	metav1.ObjectMeta `json:"metadata,omitempty" protobuf:"bytes,1,opt,name=metadata"`
	Spec WidgetSpec `json:"spec" protobuf:"bytes,2,opt,name=spec"`
}

type WidgetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty" protobuf:"bytes,1,opt,name=metadata"`
	Items []Widget `json:"items" protobuf:"bytes,2,rep,name=items"`
}

type Base struct {
	Name string `json:"name" protobuf:"bytes,1,opt,name=name"`
}

type WidgetSpec struct {
	Base `json:"" protobuf:"bytes,1,opt,name=base"`
	Replicas *int32 `json:"replicas,omitempty" protobuf:"varint,2,opt,name=replicas"`
	Mode Mode `json:"mode,omitempty" protobuf:"bytes,3,opt,name=mode,casttype=Mode"`
	Limits map[string]resource.Quantity `json:"limits,omitempty" protobuf:"bytes,4,rep,name=limits"`
	Port intstr.IntOrString `json:"port" protobuf:"bytes,5,opt,name=port"`
	Data []byte `json:"data,omitempty" protobuf:"bytes,6,opt,name=data"`
	Extra map[string]Aliases `json:"extra,omitempty" protobuf:"bytes,7,rep,name=extra"`
	Started *metav1.Time `json:"started,omitempty" protobuf:"bytes,8,opt,name=started"`
	Ignored string `json:"ignored,omitempty"`
	Weights []int32 `json:"weights" protobuf:"varint,9,rep,name=weights"`
}
"""
META = """
package v1

type TypeMeta struct {
	Kind string `json:"kind,omitempty" protobuf:"bytes,1,opt,name=kind"`
}

type ObjectMeta struct {
	Name string `json:"name,omitempty" protobuf:"bytes,1,opt,name=name"`
	Labels map[string]string `json:"labels,omitempty" protobuf:"bytes,11,rep,name=labels"`
}

type ListMeta struct {
	ResourceVersion string `json:"resourceVersion,omitempty" protobuf:"bytes,2,opt,name=resourceVersion"`
}
"""


def test_struct_tags_become_the_field_table(tmp_path: Path) -> None:
    api = tmp_path / "api"
    machinery = tmp_path / "apimachinery"
    (api / "widgets" / "v1").mkdir(parents=True)
    (api / "widgets" / "v1" / "types.go").write_text(WIDGETS)
    (machinery / "pkg" / "apis" / "meta" / "v1").mkdir(parents=True)
    (machinery / "pkg" / "apis" / "meta" / "v1" / "types.go").write_text(META)
    text = generate(
        api,
        machinery,
        api_commit="a" * 40,
        apimachinery_commit="b" * 40,
        roots=[("widgets.kaito.sh/v1", "Widget", "k8s.io/api/widgets/v1", "Widget")],
    )
    namespace: dict[str, Any] = {}
    exec(compile(text, "_tables.py", "exec"), namespace)  # the generated module
    assert namespace["KINDS"] == {
        ("widgets.kaito.sh/v1", "Widget"): "widgets/v1.Widget",
        ("widgets.kaito.sh/v1", "WidgetList"): "widgets/v1.WidgetList",
    }
    messages = namespace["MESSAGES"]
    assert messages["widgets/v1.WidgetSpec"] == (
        (1, "", "widgets/v1.Base", "I"),
        (2, "replicas", "int32", "OP"),
        (3, "mode", "string", "O"),
        (4, "limits", "map[string]resource.Quantity", "O"),
        (5, "port", "intstr.IntOrString", ""),
        (6, "data", "bytes", "O"),
        (7, "extra", "map[string]{[]string}", "O"),
        (8, "started", "meta/v1.Time", "OP"),
        (9, "weights", "[]int32", ""),
    )
    assert messages["widgets/v1.WidgetList"] == (
        (1, "metadata", "meta/v1.ListMeta", "O"),
        (2, "items", "[]widgets/v1.Widget", ""),
    )
    assert messages["meta/v1.ObjectMeta"] == (
        (1, "name", "string", "O"),
        (11, "labels", "map[string]string", "O"),
    )
    assert "meta/v1.TypeMeta" not in messages  # no protobuf tag: not on the wire
    assert "aaaaaaaaaaaa" in text

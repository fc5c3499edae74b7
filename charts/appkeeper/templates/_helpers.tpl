{{- define "appkeeper.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "appkeeper.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "appkeeper.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "appkeeper.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "appkeeper.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{- define "appkeeper.labels" -}}
app.kubernetes.io/name: {{ include "appkeeper.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "appkeeper.selectorLabels" -}}
app.kubernetes.io/name: {{ include "appkeeper.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "appkeeper.serviceAccountName" -}}
{{- default (include "appkeeper.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}


{{- /*
Kubernetes >= 1.30 (native preStop sleep, ValidatingAdmissionPolicy v1). Not Chart.yaml's
kubeVersion: that makes `helm template` fail offline, where Helm assumes v1.20.0. Checked when a
cluster answers (an install or upgrade) or when --kube-version names an older one.
*/ -}}
{{- define "appkeeper.checkKubeVersion" -}}
{{- $version := .Capabilities.KubeVersion.Version -}}
{{- $online := lookup "v1" "Namespace" "" "kube-system" -}}
{{- if and (semverCompare "<1.30.0-0" $version) (or $online (ne $version "v1.20.0")) -}}
{{- fail (printf "appkeeper needs Kubernetes 1.30 or later; this cluster is %s" $version) -}}
{{- end -}}
{{- end -}}

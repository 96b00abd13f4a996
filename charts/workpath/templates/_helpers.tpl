{{/*
Names, labels and images shared by the templates (and by templates/rbac.yaml).
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "workpath.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of object names: fullnameOverride, else the release name (plus the chart name unless the release
name contains it), at most 63 characters.
*/}}
{{- define "workpath.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The value of the helm.sh/chart label. */}}
{{- define "workpath.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "workpath.labels" -}}
helm.sh/chart: {{ include "workpath.chart" . }}
{{ include "workpath.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: workpath
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels that select the release's objects (stable across upgrades: never put the version here). */}}
{{- define "workpath.selectorLabels" -}}
app.kubernetes.io/name: {{ include "workpath.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The operator's pods: selector labels, and all labels of the operator's objects. */}}
{{- define "workpath.operator.selectorLabels" -}}
{{ include "workpath.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "workpath.operator.labels" -}}
{{ include "workpath.labels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The static workers' pods: selector labels, and all labels of the workers' objects. */}}
{{- define "workpath.worker.selectorLabels" -}}
{{ include "workpath.selectorLabels" . }}
app.kubernetes.io/component: worker
{{- end }}

{{- define "workpath.worker.labels" -}}
{{ include "workpath.labels" . }}
app.kubernetes.io/component: worker
{{- end }}

{{/* The operator's objects (Deployment, Service) are named after the release. */}}
{{- define "workpath.operator.fullname" -}}
{{- include "workpath.fullname" . }}
{{- end }}

{{- define "workpath.worker.fullname" -}}
{{- printf "%s-worker" (include "workpath.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The operator's ServiceAccount: templates/rbac.yaml creates it when operator.serviceAccount.create. */}}
{{- define "workpath.operator.serviceAccountName" -}}
{{- required "operator.serviceAccount.name must be set" .Values.operator.serviceAccount.name }}
{{- end }}

{{- define "workpath.worker.serviceAccountName" -}}
{{- required "workers.serviceAccount.name must be set" .Values.workers.serviceAccount.name }}
{{- end }}

{{/* Whether anything runs workers with the chart's worker ServiceAccount. */}}
{{- define "workpath.worker.needsServiceAccount" -}}
{{- if and .Values.workers.serviceAccount.create (or .Values.workers.enabled .Values.workerPools) }}true{{ end }}
{{- end }}

{{/* image references: repository:tag, the tag defaulting to the chart's appVersion. */}}
{{- define "workpath.operator.image" -}}
{{- printf "%s:%s" .Values.operator.image.repository (.Values.operator.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "workpath.worker.image" -}}
{{- printf "%s:%s" .Values.workers.image.repository (.Values.workers.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The directive service's address inside the cluster, as workers dial it. */}}
{{- define "workpath.directiveURL" -}}
{{- printf "ws://%s.%s.svc:%v/v1/workers" (include "workpath.operator.fullname" .) .Release.Namespace .Values.service.port }}
{{- end }}

{{/* Where the worker's projected token is mounted, and the token file in it. */}}
{{- define "workpath.worker.tokenDir" -}}
/var/run/secrets/workpath
{{- end }}

{{- define "workpath.worker.tokenFile" -}}
{{ include "workpath.worker.tokenDir" . }}/token
{{- end }}

{{/* The audience of worker tokens: the operator's TokenReview checks it. */}}
{{- define "workpath.tokenAudience" -}}
workpath
{{- end }}

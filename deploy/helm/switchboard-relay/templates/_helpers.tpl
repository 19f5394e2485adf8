{{- define "switchboard-relay.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "switchboard-relay.fullname" -}}
{{- printf "%s-%s" .Release.Name (include "switchboard-relay.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "switchboard-relay.labels" -}}
app.kubernetes.io/name: {{ include "switchboard-relay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "switchboard-relay.selector" -}}
app.kubernetes.io/name: {{ include "switchboard-relay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

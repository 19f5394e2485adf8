{{- define "switchboard-connector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "switchboard-connector.fullname" -}}
{{- printf "%s-%s" .Release.Name (include "switchboard-connector.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "switchboard-connector.labels" -}}
app.kubernetes.io/name: {{ include "switchboard-connector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "switchboard-connector.selector" -}}
app.kubernetes.io/name: {{ include "switchboard-connector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

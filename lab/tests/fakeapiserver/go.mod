module kubeaudit.lab/fakeapiserver

go 1.22

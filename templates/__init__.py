"""Korean Jinja templates for the guidance rounds, one set per round and channel.

Files: `<template>.sms.j2`, `<template>.subject.j2`, `<template>.txt.j2` and
`<template>.html.j2`, where `<template>` is named per round in the program file.
"""
